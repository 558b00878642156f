package audit

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"time"

	"github.com/pion/stun/v3"
)

// CheckWrappedPrefix starts the name of each framing check:
// "wrapped-request tcp", "wrapped-request turns".
const CheckWrappedPrefix = "wrapped-request"

// wrappedWait bounds how long a framing check waits for the server to
// answer the hidden request or close the connection.
const wrappedWait = 5 * time.Second

// wrapRequest hides req behind 24 bytes that a framer reading the first
// byte cuts as 8 bytes of ChannelData and one message without the magic
// cookie, while a framer looking for the cookie first cuts one 24-byte
// STUN message and reads req next (RFC 8656 §12.5 framing, read two
// ways). A server whose access checks frame the stream one way and whose
// TURN engine frames it the other lets req past the checks.
func wrapRequest(req []byte) []byte {
	b := []byte{0x40, 0x00, 0x00, 0x04, 0x21, 0x12, 0xA4, 0x42, 0x00, 0x01, 0, 0, 'X', 'X', 'X', 'X', 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(b[10:12], uint16(len(req)-4))
	return append(b, req...)
}

// wrappedChecks sends, over the TURN TCP listener and each TURN-over-TLS
// endpoint, an unauthenticated Allocate hidden behind a frame that two
// framers cut differently. The check passes when the server closes the
// connection or leaves the hidden request unanswered, and fails when it
// answers it: then a request behind such a frame reaches the TURN engine
// without the checks in front of it.
func wrappedChecks(ctx context.Context, cfg Config) []Result {
	var rs []Result
	if cfg.TCP != "" {
		rs = append(rs, wrapped(ctx, CheckWrappedPrefix+" tcp", cfg.TCP, nil))
	}
	for _, t := range cfg.TLS {
		if t.What != "turns" {
			continue
		}
		conf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"stun.turn"}, MinVersion: tls.VersionTLS12} //nolint:gosec // the certificate is the TLS check's
		rs = append(rs, wrapped(ctx, CheckWrappedPrefix+" turns", t.Addr, conf))
	}
	if len(rs) == 0 {
		return []Result{skip(CheckWrappedPrefix, "no TURN TCP or TLS listener to check")}
	}
	return rs
}

func wrapped(ctx context.Context, check, addr string, conf *tls.Config) Result {
	d := net.Dialer{Timeout: 10 * time.Second}
	var conn net.Conn
	var err error
	if conf != nil {
		conn, err = (&tls.Dialer{NetDialer: &d, Config: conf}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fail(check, "connect to %s: %v", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req, err := stun.Build(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedTransportUDP)
	if err != nil {
		return fail(check, "building the request: %v", err)
	}
	_ = conn.SetDeadline(time.Now().Add(wrappedWait))
	if _, err := conn.Write(wrapRequest(req.Raw)); err != nil {
		return fail(check, "write to %s: %v", addr, err)
	}
	got, err := io.ReadAll(conn)
	var ne net.Error
	timedOut := errors.As(err, &ne) && ne.Timeout()
	switch {
	case ctx.Err() != nil:
		return fail(check, "interrupted: %v", ctx.Err())
	case bytes.Contains(got, req.TransactionID[:]):
		return fail(check, "%s answered an Allocate hidden behind a frame read two ways (%d bytes back): requests can bypass the checks in front of the TURN engine", addr, len(got))
	case timedOut:
		return pass(check, "%s left an Allocate hidden behind a frame read two ways unanswered for %s", addr, wrappedWait)
	}
	return pass(check, "%s closed the connection at a frame read two ways, having answered nothing of the hidden Allocate (%d bytes back)", addr, len(got))
}
