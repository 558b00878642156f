package sfu

import (
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
)

// Limits on answering a subscriber's NACKs (RFC 4585 §6.2.1). pion's
// generator, like many receivers, asks again for every packet still
// missing at each of its intervals (100 ms), whether or not the last copy
// had time to arrive: on a congested link the copies queue behind each
// other, are lost in turn and are asked for again, and a packet goes out
// many times over a link that had no room for it once.
const (
	// resendGap is the least time between two sends of one packet again.
	resendGap = 200 * time.Millisecond
	// maxResends is how many times one packet is sent again, at most.
	maxResends = 3
	// sendHistory is how many packets of each forwarded stream the NACK
	// responder keeps to send again (a power of two). Each takes a
	// 1.5 KB buffer whatever its size, so with pion's default of 1,024 a
	// video down-track held 1.5 MB once it had sent that many packets (a
	// minute of a small layer), and a room of 25 about 900 MB; 256 is
	// 1.7 s of a 1.5 Mbit/s layer, well past the time a resent packet can
	// still be played.
	sendHistory = 256
	// resendLog is how many recent sequence numbers per SSRC the filter
	// remembers; a NACK for a packet further back than this is dropped,
	// as the responder's packet cache holds no more.
	resendLog = sendHistory
)

// nackFilterFactory makes, per peer connection, an interceptor that
// drops from each NACK the packets sent again less than resendGap ago
// or maxResends times already, before pion's responder answers them.
// It must be registered before the responder, so that it reads the
// RTCP first. dropped counts the sequence numbers dropped.
type nackFilterFactory struct {
	now     func() time.Time
	dropped func(n int)
}

func (f *nackFilterFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &nackFilter{now: f.now, dropped: f.dropped, streams: map[uint32]*resendState{}}, nil
}

type nackFilter struct {
	interceptor.NoOp
	now     func() time.Time
	dropped func(n int)

	mu      sync.Mutex
	streams map[uint32]*resendState // by media SSRC, the streams this side sends
}

// resendState is what one SSRC's packets were sent again: a ring by
// sequence number.
type resendState struct {
	seq   [resendLog]uint16
	count [resendLog]uint8
	last  [resendLog]int64 // unix ns
	high  uint16           // the highest sequence number NACKed
	any   bool
}

func (f *nackFilter) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	f.mu.Lock()
	f.streams[info.SSRC] = &resendState{}
	f.mu.Unlock()
	return w
}

func (f *nackFilter) UnbindLocalStream(info *interceptor.StreamInfo) {
	f.mu.Lock()
	delete(f.streams, info.SSRC)
	f.mu.Unlock()
}

func (f *nackFilter) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, attr, err := r.Read(b, a)
			if err != nil {
				return n, attr, err
			}
			pkts, perr := rtcp.Unmarshal(b[:n])
			if perr != nil {
				return n, attr, err // the next reader says what is wrong
			}
			changed := false
			for _, p := range pkts {
				if nack, ok := p.(*rtcp.TransportLayerNack); ok {
					changed = f.filter(nack) || changed
				}
			}
			if !changed {
				return n, attr, err
			}
			// A NACK left with no packet goes (RFC 4585 §6.2.1 wants at
			// least one); a compound left with nothing is not passed on.
			kept := pkts[:0]
			for _, p := range pkts {
				if nack, ok := p.(*rtcp.TransportLayerNack); !ok || len(nack.Nacks) > 0 {
					kept = append(kept, p)
				}
			}
			if len(kept) == 0 {
				continue
			}
			out, merr := rtcp.Marshal(kept)
			if merr != nil || len(out) > len(b) {
				return n, attr, err
			}
			// A fresh set: one the next reader may have parsed the
			// original packets into would answer what was dropped.
			return copy(b, out), interceptor.Attributes{}, nil
		}
	})
}

// filter drops from nack the packets not to send again now, and reports
// whether it dropped any.
func (f *nackFilter) filter(nack *rtcp.TransportLayerNack) bool {
	now := f.now().UnixNano()
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.streams[nack.MediaSSRC]
	if s == nil {
		return false // not a stream this side sends: the responder ignores it
	}
	var keep []uint16
	dropped := 0
	for _, pair := range nack.Nacks {
		for _, seq := range pair.PacketList() {
			if !s.any || int16(seq-s.high) > 0 {
				s.high, s.any = seq, true
			}
			i := seq % resendLog
			switch {
			case int16(s.high-seq) >= resendLog:
				dropped++ // older than the log: not in the cache either
				continue
			case s.seq[i] != seq || s.count[i] == 0:
				s.seq[i], s.count[i] = seq, 0
			case s.count[i] >= maxResends || now-s.last[i] < int64(resendGap):
				dropped++
				continue
			}
			s.count[i]++
			s.last[i] = now
			keep = append(keep, seq)
		}
	}
	if dropped == 0 {
		return false
	}
	if f.dropped != nil {
		f.dropped(dropped)
	}
	nack.Nacks = rtcp.NackPairsFromSequenceNumbers(keep)
	return true
}
