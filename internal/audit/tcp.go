package audit

import (
	"context"
	"errors"
	"net"
	"time"
)

// CheckIdleTCP names the idle-TCP check.
const CheckIdleTCP = "idle-tcp-closed"

// idleTCP opens a TCP connection to the TURN TCP listener, sends nothing
// and waits up to IdleWait for the server to close it: a server that
// keeps silent connections open can be starved of descriptors by anyone
// who opens many (a slowloris).
func idleTCP(ctx context.Context, cfg Config) Result {
	switch {
	case cfg.NoIdleWait:
		return skip(CheckIdleTCP, "not run (it waits up to %s)", cfg.IdleWait)
	case cfg.TCP == "":
		return skip(CheckIdleTCP, "no TURN TCP listener to check (none configured, or -tcp off)")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.TCP)
	if err != nil {
		return fail(CheckIdleTCP, "connect to %s: %v", cfg.TCP, err)
	}
	defer conn.Close()
	start := time.Now()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := conn.SetReadDeadline(start.Add(cfg.IdleWait)); err != nil {
		return fail(CheckIdleTCP, "%v", err)
	}
	n, err := conn.Read(make([]byte, 1))
	waited := time.Since(start).Round(100 * time.Millisecond)
	var ne net.Error
	switch {
	case ctx.Err() != nil:
		return fail(CheckIdleTCP, "interrupted after %s: %v", waited, ctx.Err())
	case n > 0:
		return fail(CheckIdleTCP, "connection to %s sent nothing, and the server sent data after %s", cfg.TCP, waited)
	case errors.As(err, &ne) && ne.Timeout():
		return fail(CheckIdleTCP, "connection to %s that sends nothing was still open after %s", cfg.TCP, cfg.IdleWait)
	}
	return pass(CheckIdleTCP, "connection to %s that sends nothing was closed by the server after %s (bound %s): %v",
		cfg.TCP, waited, cfg.IdleWait, err)
}
