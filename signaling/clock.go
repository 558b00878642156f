package signaling

import (
	"context"
	"sync"
	"time"
)

// Clock is the time source of a Server's timers: the join timeout, the
// resume window, credential refreshes, pings, the delay before a wrong
// password is answered, the password throttle's windows and the message
// rate limit. Socket deadlines (pong wait, write wait, close grace) always
// use the system clock: the kernel enforces them.
type Clock interface {
	// Now is the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed, unless
	// the returned Timer is stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending call made by Clock.AfterFunc.
type Timer interface {
	// Stop prevents the call; false when it has already started or the
	// timer was already stopped (time.Timer.Stop).
	Stop() bool
}

// systemClock is the Clock of a Config without one.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// tasks counts a Server's connection goroutines and pending timers, so
// Close can wait for all of them. Unlike a sync.WaitGroup, it may count
// up again after reaching zero, and waiting takes a context.
type tasks struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0; nil while nobody waits
}

func (t *tasks) add() {
	t.mu.Lock()
	t.n++
	t.mu.Unlock()
}

func (t *tasks) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
}

// goFunc runs f in a goroutine of its own, counted until f returns.
func (t *tasks) goFunc(f func()) {
	t.add()
	go func() {
		defer t.done()
		f()
	}()
}

// wait returns nil once nothing is counted, or ctx.Err() when ctx ends
// first.
func (t *tasks) wait(ctx context.Context) error {
	t.mu.Lock()
	if t.n == 0 {
		t.mu.Unlock()
		return nil
	}
	if t.idle == nil {
		t.idle = make(chan struct{})
	}
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// count is the number of goroutines and pending timers counted.
func (t *tasks) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// afterFunc is Clock.AfterFunc with the pending timer, and then its
// call, counted in s.tasks: a timer ends by firing or by Stop.
func (s *Server) afterFunc(d time.Duration, f func()) Timer {
	s.tasks.add()
	return countedTimer{s.clock.AfterFunc(d, func() {
		defer s.tasks.done()
		f()
	}), &s.tasks}
}

type countedTimer struct {
	t     Timer
	tasks *tasks
}

func (c countedTimer) Stop() bool {
	if c.t.Stop() {
		c.tasks.done()
		return true
	}
	return false
}
