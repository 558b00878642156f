package testenv

import (
	"testing"
	"time"
)

func TestEventually(t *testing.T) {
	tests := []struct {
		name     string
		trueFrom int // the call from which cond holds; 0: never
		fail     bool
	}{
		{"at once", 1, false},
		{"on the fifth check", 5, false},
		{"never", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			r := &recorder{TB: t}
			Eventually(r, 50*time.Millisecond, tt.name, func() bool {
				calls++
				return tt.trueFrom > 0 && calls >= tt.trueFrom
			})
			if r.failed != tt.fail {
				t.Errorf("failed: got %v, want %v", r.failed, tt.fail)
			}
			if tt.trueFrom > 0 && calls != tt.trueFrom {
				t.Errorf("cond checked %d times, want %d", calls, tt.trueFrom)
			}
		})
	}
}

func TestEventuallyWhy(t *testing.T) {
	calls := 0
	r := &recorder{TB: t}
	EventuallyWhy(r, time.Second, "third", func() string {
		if calls++; calls < 3 {
			return "not yet"
		}
		return ""
	})
	if r.failed || calls != 3 {
		t.Errorf("failed %v after %d checks, want a pass on the third", r.failed, calls)
	}
	r = &recorder{TB: t}
	EventuallyWhy(r, 20*time.Millisecond, "never", func() string { return "still b" })
	if !r.failed {
		t.Error("a condition that never holds passed")
	}
}
