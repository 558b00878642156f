package signaling

import "sync"

// outbox is a connection's bounded queue of outbound messages. No
// goroutine waits on it: push reports when the queue turned busy so the
// caller starts a writer, and the writer stops when next finds it empty.
// An idle connection so holds no queue slots and no writer goroutine.
type outbox struct {
	mu      sync.Mutex
	q       [][]byte
	writing bool
}

// push queues b. ok is false when sendQueue messages are already waiting;
// start is true when no writer is running and the caller must start one.
func (o *outbox) push(b []byte) (start, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.q) >= sendQueue {
		return false, false
	}
	o.q = append(o.q, b)
	if !o.writing {
		o.writing = true
		start = true
	}
	return start, true
}

// next returns what is queued for the running writer, oldest first; nil
// means the queue is empty and the writer must stop.
func (o *outbox) next() [][]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := o.q
	o.q = nil
	if len(q) == 0 {
		o.writing = false
	}
	return q
}

// stop marks the writer stopped, leaving the queue for take.
func (o *outbox) stop() {
	o.mu.Lock()
	o.writing = false
	o.mu.Unlock()
}

// take removes and returns everything queued, for the close and resume
// paths.
func (o *outbox) take() [][]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := o.q
	o.q = nil
	return q
}
