package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// recorder keeps the messages and reasons of the records it gets.
type recorder struct {
	mu   sync.Mutex
	msgs []string
	cnt  []int64
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	var n int64
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "count" {
			n = a.Value.Int64()
		}
		return true
	})
	r.cnt = append(r.cnt, n)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// TestWindow: per reason, PerMinute lines a minute, then one summary line
// naming how many were left out, from the next line or from Flush.
func TestWindow(t *testing.T) {
	rec := &recorder{}
	now := time.Unix(1_700_000_000, 0)
	l := New(slog.New(rec), 10, func() time.Time { return now })
	for i := 0; i < 100; i++ {
		l.Info("bad-integrity", "refused")
		l.Warn("expired", "refused")
	}
	if got := len(rec.msgs); got != 20 {
		t.Fatalf("first minute: %d lines, want 20", got)
	}
	l.Flush() // the minute is not over: nothing yet
	if got := len(rec.msgs); got != 20 {
		t.Fatalf("early flush wrote %d lines", got-20)
	}
	now = now.Add(61 * time.Second)
	l.Info("bad-integrity", "refused") // summary of 90, then the line
	l.Flush()                          // summary of 90 for "expired"
	if got := len(rec.msgs); got != 23 {
		t.Fatalf("after a minute: %d lines, want 23: %q", got, rec.msgs)
	}
	summaries := 0
	for i, m := range rec.msgs {
		if m == "log lines left out" {
			summaries++
			if rec.cnt[i] != 90 {
				t.Errorf("summary counts %d, want 90", rec.cnt[i])
			}
		}
	}
	if summaries != 2 {
		t.Errorf("%d summary lines, want 2", summaries)
	}
}

func TestClip(t *testing.T) {
	long := string(make([]byte, 500))
	if got := Clip(long); len(got) > 70 {
		t.Errorf("Clip left %d bytes", len(got))
	}
	if got := Clip("alice"); got != "alice" {
		t.Errorf("Clip(alice) = %q", got)
	}
}
