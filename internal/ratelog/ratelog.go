// Package ratelog writes log lines about refusals at a bounded rate, so
// whoever provokes them (bad credentials, denied peers, refused
// connections, rate-limited requests) cannot set the log's volume.
//
// Per reason, at most PerMinute lines are written in each minute; the rest
// are counted, and one summary line says how many were left out once that
// minute is over (at the reason's next line, at Flush, or from a timer
// started by the first line left out). Metrics should count every
// refusal; this only bounds lines.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// DefaultPerMinute is the lines per reason per minute of a zero
// Logger.PerMinute.
const DefaultPerMinute = 10

// Logger is a rate-bounded logger. Create it with New; it is safe for
// concurrent use.
type Logger struct {
	log       *slog.Logger
	perMinute int
	now       func() time.Time
	// timers is false in tests with an injected clock: summaries then
	// come only from Flush and later lines.
	timers bool

	mu      sync.Mutex
	windows map[string]*window
}

type window struct {
	start      time.Time
	logged     int
	suppressed int64
	timer      bool // a flush is scheduled for this window
}

// New returns a Logger writing to log at most perMinute lines per reason
// per minute (<= 0: DefaultPerMinute). now is the clock; nil: time.Now,
// with a timer that writes each summary when its minute ends.
func New(log *slog.Logger, perMinute int, now func() time.Time) *Logger {
	if perMinute <= 0 {
		perMinute = DefaultPerMinute
	}
	l := &Logger{log: log, perMinute: perMinute, now: now, windows: map[string]*window{}}
	if now == nil {
		l.now, l.timers = time.Now, true
	}
	return l
}

// Info logs msg with args and "reason" at Info, within reason's budget.
func (l *Logger) Info(reason, msg string, args ...any) { l.Log(slog.LevelInfo, reason, msg, args...) }

// Warn is Info at Warn.
func (l *Logger) Warn(reason, msg string, args ...any) { l.Log(slog.LevelWarn, reason, msg, args...) }

// Log logs msg with args and "reason" at level, unless reason's budget for
// the current minute is spent.
func (l *Logger) Log(level slog.Level, reason, msg string, args ...any) {
	now := l.now()
	l.mu.Lock()
	w := l.windows[reason]
	if w == nil {
		w = &window{start: now}
		l.windows[reason] = w
	}
	var summary int64
	if now.Sub(w.start) >= time.Minute {
		summary = w.suppressed
		*w = window{start: now}
	}
	ok := w.logged < l.perMinute
	if ok {
		w.logged++
	} else {
		w.suppressed++
		if l.timers && !w.timer {
			w.timer = true
			time.AfterFunc(time.Minute-now.Sub(w.start), l.Flush)
		}
	}
	l.mu.Unlock()
	if summary > 0 {
		l.summary(reason, summary)
	}
	if ok {
		l.log.Log(context.Background(), level, msg, append(args, "reason", reason)...)
	}
}

// Flush writes the summary of every reason whose minute is over and
// forgets those reasons.
func (l *Logger) Flush() {
	now := l.now()
	type pending struct {
		reason string
		n      int64
	}
	var out []pending
	l.mu.Lock()
	for reason, w := range l.windows {
		if now.Sub(w.start) < time.Minute {
			continue
		}
		if w.suppressed > 0 {
			out = append(out, pending{reason, w.suppressed})
		}
		delete(l.windows, reason)
	}
	l.mu.Unlock()
	for _, p := range out {
		l.summary(p.reason, p.n)
	}
}

func (l *Logger) summary(reason string, n int64) {
	l.log.Info("log lines left out", "reason", reason, "count", n, "limit_per_minute", l.perMinute)
}

// Clip shortens client-chosen text (a user name, a header) to at most 64
// bytes for a log line.
func Clip(s string) string {
	const maxLen = 64
	if len(s) > maxLen {
		return s[:maxLen] + "…"
	}
	return s
}
