package testenv

import (
	"testing"
	"time"
)

// Eventually waits for cond to hold and fails the test (Fatalf, naming
// what) if it does not within limit. It checks cond at once, then at
// pauses growing from 1 ms to 20 ms. It is for state with no event to
// wait on (a counter, a connection count, a cluster's view); cond must
// have no side effects. Call it from the test's goroutine.
func Eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
			return // for a testing.TB whose Fatalf returns
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
}
