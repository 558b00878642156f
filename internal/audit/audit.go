// Package audit checks a running STUN/TURN server from the outside, the
// way an attacker would: it asks for what a safe server must refuse
// (allocations without credentials, permissions to loopback, private,
// metadata and IPv4-embedding IPv6 peers, to the server's own listener
// ports), measures how much an unauthenticated request is amplified, holds
// an idle TCP connection open, opens many idle connections to the web
// server to see them capped, and looks at the TLS certificate. Each
// check gives one Result: PASS, FAIL or SKIP with the evidence.
//
// The audit only ever sends requests. It asks for permissions to the
// forbidden peers but never sends a datagram to them (no Send indication,
// no ChannelData, no ChannelBind), even when a misconfigured server
// grants them; its allocation is deleted at the end (Refresh with
// LIFETIME 0). Everything it sends goes to the addresses in Config.
package audit

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/netip"
	"time"
)

// CredentialTTL is the lifetime of the credential the audit mints for
// itself: long enough for every check, short enough to be worthless if
// it leaked.
const CredentialTTL = 5 * time.Minute

// CredentialUser is the user id of the audit's credentials, so its
// allocations are told apart in logs and quotas.
const CredentialUser = "audit"

// DefaultIdleWait is how long the idle-TCP check waits for the server to
// close a connection that sends nothing: icebox closes such connections
// after 10 s, and the 5 s on top absorb scheduling and timer slack.
const DefaultIdleWait = 15 * time.Second

// Config says what to audit and with which credential. Only Server is
// required; each check that lacks what it needs is skipped with the
// reason.
type Config struct {
	// Server is the TURN UDP listener, host:port.
	Server string
	// TCP is a TURN TCP listener, host:port; "" skips the idle check.
	TCP string
	// TLS lists TLS endpoints (a TURN tls:// listener, HTTPS) whose
	// certificate is checked; empty skips the check.
	TLS []TLSTarget
	// PublicIP is the address the server advertises to peers, for the
	// own-address checks. Zero value: the address in the audit's own
	// XOR-RELAYED-ADDRESS.
	PublicIP netip.Addr
	// Realm is the REALM the configuration names. Empty: whatever the
	// server says. A different one is reported in the evidence.
	Realm string
	// Username and Password are a long-term credential (a TURN REST one
	// minted for the audit, or a static user). Empty: the checks that
	// need an allocation are skipped.
	Username, Password string
	// RelayMin and RelayMax are the server's relay port range, inclusive;
	// zero when unknown.
	RelayMin, RelayMax uint16
	// HTTP is the web server's address (the page, HTTP or HTTPS),
	// host:port, for the HTTP connection-cap check; "" skips it.
	HTTP string
	// HTTPS says HTTP serves HTTPS (also implied when HTTP is one of the
	// TLS targets).
	HTTPS bool
	// HTTPConnections is how many idle connections the HTTP cap check
	// opens at most. Zero: DefaultHTTPConnections.
	HTTPConnections int
	// IdleWait bounds the idle-TCP check. Zero: DefaultIdleWait.
	IdleWait time.Duration
	// NoIdleWait skips the idle-TCP and HTTP cap checks (the daemon's
	// start-up subset).
	NoIdleWait bool
	// LocalHost says the audited server runs on this host (daemon.AuditConfig),
	// so its kernel's ephemeral port range can be checked against the
	// relay range (CheckRelayEphemeral). False: that check is skipped.
	LocalHost bool
	// Insecure accepts a TLS certificate that does not verify against
	// RootCAs (self-signed labs); name and expiry are still checked.
	Insecure bool
	// RootCAs verifies TLS certificates. Nil: the system roots.
	RootCAs *x509.CertPool
	// PeerPort is the port asked for with the loopback peers. Zero: the
	// port of the audit's own relayed address, a relay port, so a refusal
	// is about the address and not the port. Tests set it to a socket
	// that must receive nothing.
	PeerPort uint16
	// RTO is the first STUN retransmission timeout. Zero: DefaultRTO.
	RTO time.Duration
	// Now gives the time for credential-free decisions such as the
	// certificate expiry margin. Nil: time.Now.
	Now func() time.Time
}

// TLSTarget is one TLS endpoint to check.
type TLSTarget struct {
	// Addr is host:port to dial.
	Addr string
	// Name is the DNS name (or IP address) the certificate must be valid
	// for: public_host. It is also sent as SNI when it is a name.
	Name string
	// What names the endpoint in the evidence, e.g. "https" or "turns".
	What string
}

// Status is a check's verdict.
type Status string

// The verdicts. Only Fail makes the audit fail.
const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
	Skip Status = "SKIP"
)

// Result is one check's verdict and its evidence.
type Result struct {
	Status   Status
	Check    string // e.g. "peer-refused 127.0.0.1"
	Evidence string // what was sent and what came back
	// Ratio is set by the amplification checks: response bytes per
	// request byte.
	Ratio float64
}

// String is the report line: "PASS <check>: <evidence>".
func (r Result) String() string { return fmt.Sprintf("%s %s: %s", r.Status, r.Check, r.Evidence) }

// Run runs every check in order and returns their results. It stops early
// only when ctx ends; a check that cannot run is a Skip or a Fail with the
// reason.
func Run(ctx context.Context, cfg Config) []Result {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IdleWait <= 0 {
		cfg.IdleWait = DefaultIdleWait
	}
	if cfg.HTTPConnections <= 0 {
		cfg.HTTPConnections = DefaultHTTPConnections
	}
	var rs []Result
	rs = append(rs, turnChecks(ctx, cfg)...)
	rs = append(rs, amplification(ctx, cfg)...)
	rs = append(rs, idleTCP(ctx, cfg))
	rs = append(rs, wrappedChecks(ctx, cfg)...)
	rs = append(rs, relayEphemeral(cfg))
	rs = append(rs, httpCap(ctx, cfg))
	rs = append(rs, tlsChecks(ctx, cfg)...)
	return rs
}

// Print writes one line per result to w and returns the number of
// failures.
func Print(w io.Writer, rs []Result) (failures int) {
	for _, r := range rs {
		fmt.Fprintln(w, r.String())
		if r.Status == Fail {
			failures++
		}
	}
	return failures
}

// Failures counts the failed checks in rs.
func Failures(rs []Result) int {
	n := 0
	for _, r := range rs {
		if r.Status == Fail {
			n++
		}
	}
	return n
}

func pass(check, format string, args ...any) Result {
	return Result{Status: Pass, Check: check, Evidence: fmt.Sprintf(format, args...)}
}

func fail(check, format string, args ...any) Result {
	return Result{Status: Fail, Check: check, Evidence: fmt.Sprintf(format, args...)}
}

func skip(check, format string, args ...any) Result {
	return Result{Status: Skip, Check: check, Evidence: fmt.Sprintf(format, args...)}
}
