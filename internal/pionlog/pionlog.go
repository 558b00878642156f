// Package pionlog bridges pion's leveled logging (pion/turn, pion/webrtc,
// pion/ice) to log/slog.
package pionlog

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/pion/logging"
)

// Factory bridges pion's logging to slog (a logging.LoggerFactory). pion's trace, debug and
// info go to slog's debug level: pion logs at info for every packet that
// reaches a relay without a permission, which a stranger could otherwise
// turn into a log flood (icebox logs its own refusals once per request).
// Formatting is skipped when the level is off.
type Factory struct{ Log *slog.Logger }

// NewLogger returns the logger of one pion scope ("turn", "ice", "pc"…),
// logging with scope="pion/<scope>".
func (f Factory) NewLogger(scope string) logging.LeveledLogger {
	return slogLogger{f.Log.With("scope", "pion/"+scope)}
}

type slogLogger struct{ log *slog.Logger }

func (l slogLogger) logf(level slog.Level, format string, args ...any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (l slogLogger) Trace(msg string)                  { l.logf(slog.LevelDebug-4, "%s", msg) }
func (l slogLogger) Tracef(format string, args ...any) { l.logf(slog.LevelDebug-4, format, args...) }
func (l slogLogger) Debug(msg string)                  { l.logf(slog.LevelDebug, "%s", msg) }
func (l slogLogger) Debugf(format string, args ...any) { l.logf(slog.LevelDebug, format, args...) }
func (l slogLogger) Info(msg string)                   { l.logf(slog.LevelDebug, "%s", msg) }
func (l slogLogger) Infof(format string, args ...any)  { l.logf(slog.LevelDebug, format, args...) }
func (l slogLogger) Warn(msg string)                   { l.logf(slog.LevelWarn, "%s", msg) }
func (l slogLogger) Warnf(format string, args ...any)  { l.logf(slog.LevelWarn, format, args...) }
func (l slogLogger) Error(msg string)                  { l.Errorf("%s", msg) }

// Errorf logs at error, except a client that left: pion/turn reports the
// failed close of a TCP or TLS connection whose client had already gone
// ("Failed to close conn: tls: failed to send closeNotify alert (but
// connection was closed anyway): … broken pipe"), which every TURN over TLS
// client that closes its side first causes; that goes to debug.
func (l slogLogger) Errorf(format string, args ...any) {
	level := slog.LevelError
	if strings.HasPrefix(format, "Failed to close conn") {
		if msg := fmt.Sprintf(format, args...); strings.Contains(msg, "closeNotify") ||
			strings.Contains(msg, "broken pipe") || strings.Contains(msg, "connection reset by peer") {
			level = slog.LevelDebug
		}
	}
	l.logf(level, format, args...)
}

// NewClientLogger is NewLogger for a scope whose warnings each tell of one
// client's connection, which any client can cause at will (pion/ice's ICE
// TCP mux: a connection closed or idle, a duplicate); they go to debug, as
// a flood of them would otherwise bury the operator's warnings. Errors
// stay errors.
func (f Factory) NewClientLogger(scope string) logging.LeveledLogger {
	return clientLogger{slogLogger{f.Log.With("scope", "pion/"+scope)}}
}

type clientLogger struct{ slogLogger }

func (l clientLogger) Warn(msg string)                  { l.logf(slog.LevelDebug, "%s", msg) }
func (l clientLogger) Warnf(format string, args ...any) { l.logf(slog.LevelDebug, format, args...) }
