package sfu

import (
	"sync"
	"sync/atomic"
	"time"
)

// Probing: GCC (pion/interceptor's gcc, after the IETF draft
// draft-ietf-rmcat-gcc-02 §5.5) lets a subscriber's estimate grow to at
// most 1.5 times the rate the subscriber acknowledges receiving. A
// subscriber held to low layers by a past congestion receives little, so
// its estimate can stall below the next layer's rate on a link that has
// long since freed up. While a subscriber gets less than it asked for,
// the SFU sends it probe packets beside the media, up to probeFill of
// the estimate, so that what it receives, and so the ceiling, rises; the
// allocation takes the higher layer once the estimate fits it.
//
// A probe packet is a copy of a video packet just forwarded, sent again
// with the same sequence number: a receiver drops it as a duplicate
// (RFC 3550 §A.1), while transport-wide congestion control counts it as
// received bytes, each copy having its own transport-wide sequence
// number. Padding-only packets would need sequence numbers of their own
// in each stream, and pion's estimator counts only their headers.
const (
	// probeFill is the share of the estimate media and probes may fill
	// together: below the estimate, so a probe does not itself queue
	// media on a link whose capacity the estimate has found.
	probeFill = 0.9
	// probeMaxLoss is the loss (GCC's average, a fraction) above which no
	// probe is sent.
	probeMaxLoss = 0.02
	// probeBurst bounds the probe bits that may build up between two
	// forwarded packets: 100 ms of the probe rate.
	probeBurst = 100 * time.Millisecond
	// probeCopies is the most copies of one packet sent as probes.
	probeCopies = 2
)

// probeRate is the probe rate, bit/s, for a subscriber whose estimate is
// estimate, whose media (the layers chosen, with audio) is media and
// would be need with every track at the layer it asked for: none unless
// it gets less than it asked for, its path shows under probeMaxLoss loss
// and GCC sees no overuse; then what tops media up to probeFill of the
// estimate, or to need if that is less.
func probeRate(estimate, media, need, loss float64, overusing bool) float64 {
	if need <= media || overusing || loss > probeMaxLoss {
		return 0
	}
	return max(0, min(probeFill*estimate, need)-media)
}

// prober meters a subscriber's probe packets: a token bucket of bits
// filled at the rate allocate sets.
type prober struct {
	on     atomic.Bool // rate > 0: the forwarding path's check, without mu
	mu     sync.Mutex
	rate   float64 // bit/s
	tokens float64 // bits
	at     time.Time
}

// setRate makes rate (bit/s) the probe rate from now on.
func (p *prober) setRate(rate float64, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fill(now)
	p.rate = rate
	if rate == 0 {
		p.tokens = 0
	}
	p.on.Store(rate > 0)
}

// active says whether probes are being sent.
func (p *prober) active() bool { return p.on.Load() }

func (p *prober) fill(now time.Time) {
	if !p.at.IsZero() {
		p.tokens = min(p.tokens+p.rate*now.Sub(p.at).Seconds(), p.rate*probeBurst.Seconds())
	}
	p.at = now
}

// copies is how many copies of a packet of size bytes are due now, at
// most probeCopies; they are taken from the bucket.
func (p *prober) copies(size int, now time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rate == 0 {
		return 0
	}
	p.fill(now)
	bits := float64(8 * size)
	n := 0
	for n < probeCopies && p.tokens >= bits {
		p.tokens -= bits
		n++
	}
	return n
}
