package turnsrv

import (
	"log/slog"
	"sync"
	"time"
)

// refusalLogPerMinute is how many lines refusalLog writes per reason per
// minute; the rest are counted and summed up in one line.
const refusalLogPerMinute = 10

// refusalLog logs refused requests at a bounded rate, so whoever sends
// them cannot set the log volume: per reason, at most refusalLogPerMinute
// lines in each minute, then one summary line with the number left
// unlogged when that minute is over (at the reason's next refusal, or at
// the next flush). Metrics count every refusal; this only bounds lines.
type refusalLog struct {
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	windows map[string]*refusalWindow
}

type refusalWindow struct {
	start      time.Time
	logged     int
	suppressed int64
}

func newRefusalLog(log *slog.Logger, now func() time.Time) *refusalLog {
	return &refusalLog{log: log, now: now, windows: map[string]*refusalWindow{}}
}

// info logs msg with args under reason, unless the reason's budget for
// the current minute is spent.
func (r *refusalLog) info(reason, msg string, args ...any) {
	now := r.now()
	r.mu.Lock()
	w := r.windows[reason]
	if w == nil {
		w = &refusalWindow{start: now}
		r.windows[reason] = w
	}
	var summary int64
	if now.Sub(w.start) >= time.Minute {
		summary = w.suppressed
		*w = refusalWindow{start: now}
	}
	ok := w.logged < refusalLogPerMinute
	if ok {
		w.logged++
	} else {
		w.suppressed++
	}
	r.mu.Unlock()
	if summary > 0 {
		r.summary(reason, summary)
	}
	if ok {
		r.log.Info(msg, append(args, "reason", reason)...)
	}
}

// flush writes the summary of every reason whose minute is over.
func (r *refusalLog) flush() {
	now := r.now()
	type pending struct {
		reason string
		n      int64
	}
	var out []pending
	r.mu.Lock()
	for reason, w := range r.windows {
		if now.Sub(w.start) < time.Minute {
			continue
		}
		if w.suppressed > 0 {
			out = append(out, pending{reason, w.suppressed})
		}
		delete(r.windows, reason)
	}
	r.mu.Unlock()
	for _, p := range out {
		r.summary(p.reason, p.n)
	}
}

func (r *refusalLog) summary(reason string, n int64) {
	r.log.Info("turn refusals not logged", "reason", reason, "count", n, "limit_per_minute", refusalLogPerMinute)
}

// logUser shortens a client-chosen username for a log line.
func logUser(u string) string {
	const maxLen = 64
	if len(u) > maxLen {
		return u[:maxLen] + "…"
	}
	return u
}
