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
	if wait(limit, func() string {
		if cond() {
			return ""
		}
		return "not yet"
	}) != "" {
		t.Fatalf("%s: not within %s", what, limit)
	}
}

// EventuallyWhy is Eventually for a condition that says why it does
// not hold yet: cond returns "" once it holds, and a failure quotes its
// last answer.
func EventuallyWhy(t testing.TB, limit time.Duration, what string, cond func() string) {
	t.Helper()
	if why := wait(limit, cond); why != "" {
		t.Fatalf("%s: not within %s: %s", what, limit, why)
	}
}

// wait calls cond until it returns "" or limit has passed, and returns
// its last answer.
func wait(limit time.Duration, cond func() string) string {
	deadline := time.Now().Add(limit)
	pause := time.Millisecond
	for {
		why := cond()
		if why == "" || time.Now().After(deadline) {
			return why
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
}

// Within reports whether cond holds within limit, checking it as
// Eventually does, without failing the test: for a figure the test logs
// rather than a promise it checks.
func Within(limit time.Duration, cond func() bool) bool {
	return wait(limit, func() string {
		if cond() {
			return ""
		}
		return "not yet"
	}) == ""
}
