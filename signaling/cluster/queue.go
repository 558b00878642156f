package cluster

import (
	"sync"

	"github.com/icebox-project/icebox/signaling"
)

// Queue bounds, in bytes of messages as NATS carries them (payload,
// subject, reply and headers). A node's messages to and from the other
// nodes wait in two queues, one each way, so that neither NATS nor the
// signaling server waits on the other; each is bounded here. With the
// signaling server's own queues (48 MiB at worst, signaling.MaxServer-
// QueuedBytes and signaling.MaxServerHeldBytes) the cluster's 10 MiB at
// worst (the two queues and the hand-off) keep the total under the 64 MB
// a small appliance is meant to spend on signaling.
//
// nats.go's own slow-consumer limits (Subscription.SetPendingLimits,
// by default 500,000 messages and 64 MiB per subscription) do not apply
// to a channel subscription, the only kind that keeps one arrival order
// across the node's subjects, and would drop room events as readily as
// signals; so the node bounds the queue itself.
const (
	// MaxOutboundBytes bounds the outbound queue (announcements, signals,
	// heartbeats, members answers, on their way to NATS): 4 MiB, 64
	// signals of signaling.MaxMessageSize. It fills only while NATS takes
	// messages more slowly than the node's peers send them.
	MaxOutboundBytes = 4 << 20
	// MaxInboundBytes bounds the inbound queue (the other nodes' messages
	// waiting to be applied here): 4 MiB likewise. It fills while the
	// signaling server is slow to take them, or while the rooms load at
	// start-up.
	MaxInboundBytes = 4 << 20
	// eventReserveBytes is the part of each queue that signals never
	// take: 1 MiB, some 5,000 room events of ~200 bytes. A signal is
	// queued only while the queue holds at most MaxOutboundBytes (or
	// MaxInboundBytes) less this, so a flood of signals never crowds out
	// room events, heartbeats or members answers; past that the newest
	// signal is dropped, counted and logged. Newest, because the earlier
	// messages of a negotiation are what the later ones need (an offer
	// before its ICE candidates): what gets through is a prefix, and the
	// peers recover as from any lost signal (an ICE restart).
	eventReserveBytes = 1 << 20
	// inboundHandoff is the capacity, in messages, of the channel nats.go
	// delivers into; a goroutine moves each message on to the inbound
	// queue at once, so it holds a few at most: 32 is 2 MiB of signals of
	// signaling.MaxMessageSize (32 MiB at NATS's 1 MiB payload limit, only
	// from a NATS client that has the cluster's password). Past it nats.go
	// drops what arrives (a slow consumer), which the node treats as a
	// lost room event.
	inboundHandoff = 32
)

// The signals' share of each queue holds at least two of the largest
// (a negative array length fails to compile).
var _ [min(MaxOutboundBytes, MaxInboundBytes) - eventReserveBytes - 2*signaling.MaxMessageSize]struct{}

// outMsg is one item of the outbound queue: a message to publish, or
// (kind release) a peer whose name and place go back to the bucket, or a
// marker (done) closed when the consumer reaches it.
type outMsg struct {
	subject string
	data    []byte
	kind    string
	room    string
	id      string
	done    chan struct{}
}

// size is m's bytes as counted against the bound (its headers, the
// signature, are a fixed ~100 bytes, counted as such).
func (m outMsg) size() int { return len(m.subject) + len(m.data) + 100 }

// queue is a FIFO with one consumer, bounded in bytes (max; 0 is no
// bound). push never blocks, so it may be called under signaling's hub
// lock; it is a leaf lock.
type queue[T any] struct {
	max  int
	wake chan struct{} // one token when items were added

	mu     sync.Mutex
	items  []queued[T]
	bytes  int // in items, plus the item the consumer holds
	inHand int // the bytes of the item the consumer holds
	peak   int // the most bytes ever held
	closed bool
	// lost: a message that was not a signal was dropped; cleared by
	// takeLost.
	lost bool
	// onClosed is given what is pushed after close (a marker to close).
	onClosed func(T)
}

type queued[T any] struct {
	v    T
	size int
}

func (q *queue[T]) init(max int, onClosed func(T)) {
	q.max = max
	q.wake = make(chan struct{}, 1)
	q.onClosed = onClosed
}

// push queues v of size bytes, or drops it: false when it does not fit.
// A signal fits while the queue holds at most max less eventReserveBytes
// with it; anything else while the queue holds at most max. keep, when
// v is dropped, marks the queue lost (takeLost). A closed queue takes
// nothing (and reports true).
func (q *queue[T]) push(v T, size int, signal, keep bool) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		if q.onClosed != nil {
			q.onClosed(v)
		}
		return true
	}
	limit := q.max
	if signal {
		limit -= eventReserveBytes
	}
	if q.max > 0 && q.bytes+size > limit {
		q.lost = q.lost || keep
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, queued[T]{v, size})
	q.bytes += size
	q.peak = max(q.peak, q.bytes)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// next returns the oldest item; ok is false when there is none. The
// item counts against the bound until the consumer calls next again: it
// is still in memory while the consumer handles it.
func (q *queue[T]) next() (v T, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.bytes -= q.inHand
	q.inHand = 0
	if len(q.items) == 0 {
		return v, false
	}
	it := q.items[0]
	q.items[0] = queued[T]{}
	q.items = q.items[1:]
	q.inHand = it.size
	return it.v, true
}

// takeLost reports, and clears, whether a message other than a signal
// was dropped since the last call.
func (q *queue[T]) takeLost() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	lost := q.lost
	q.lost = false
	return lost
}

// held returns the bytes held now and the most ever held.
func (q *queue[T]) held() (now, peak int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes, q.peak
}

// drain drops what is left and closes the queue; each item is given to
// f (a marker closed, say).
func (q *queue[T]) drain(f func(T)) {
	q.mu.Lock()
	q.closed = true
	items := q.items
	q.items = nil
	q.bytes -= q.inHand + sumSizes(items)
	q.inHand = 0
	q.mu.Unlock()
	for _, it := range items {
		f(it.v)
	}
}

func sumSizes[T any](items []queued[T]) int {
	n := 0
	for _, it := range items {
		n += it.size
	}
	return n
}

// take returns everything queued, nil when empty; the items no longer
// count against the bound (the release queue's consumer takes batches).
func (q *queue[T]) take() []T {
	q.mu.Lock()
	items := q.items
	q.items = nil
	q.bytes -= sumSizes(items)
	q.mu.Unlock()
	out := make([]T, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out
}

// flushed returns a channel closed once q's consumer has reached
// everything queued before the call (or q is closed).
func flushed(q *queue[outMsg]) <-chan struct{} {
	done := make(chan struct{})
	q.push(outMsg{done: done}, 0, false, false)
	return done
}

// closeMarker closes m's channel when m is a marker.
func closeMarker(m outMsg) {
	if m.done != nil {
		close(m.done)
	}
}

// markLost marks the queue lost, as a dropped room event does.
func (q *queue[T]) markLost() {
	q.mu.Lock()
	q.lost = true
	q.mu.Unlock()
}
