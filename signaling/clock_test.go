package signaling

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when Advance is called. Timers
// fire in Advance, in the calling goroutine, in order: when Advance
// returns, every call due by then has run and returned.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  map[*fakeTimer]struct{}
	changed chan struct{} // closed and replaced when a timer is started
}

type fakeTimer struct {
	c  *fakeClock
	at time.Time
	f  func()
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_700_000_000, 0), timers: map[*fakeTimer]struct{}{}, changed: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers[t] = struct{}{}
	close(c.changed)
	c.changed = make(chan struct{})
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, pending := t.c.timers[t]
	delete(t.c.timers, t)
	return pending
}

// Advance moves the clock d forward, running every timer due by then,
// those started by the calls included.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var next *fakeTimer
		for t := range c.timers {
			if !t.at.After(end) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		delete(c.timers, next)
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.mu.Unlock()
		next.f()
	}
}

// waitTimer waits until a timer due d from now is pending: the event of
// a goroutine starting one (such as the pause before a wrong password
// is answered).
func (c *fakeClock) waitTimer(t *testing.T, d time.Duration) {
	t.Helper()
	fail := time.NewTimer(5 * time.Second)
	defer fail.Stop()
	for {
		c.mu.Lock()
		at, found := c.now.Add(d), false
		for tm := range c.timers {
			found = found || tm.at.Equal(at)
		}
		changed := c.changed
		c.mu.Unlock()
		if found {
			return
		}
		select {
		case <-changed:
		case <-fail.C:
			t.Fatalf("no timer due in %v was started", d)
		}
	}
}
