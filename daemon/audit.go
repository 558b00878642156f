package daemon

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/internal/audit"
)

// auditTimeout bounds one self-audit. Each of its dozen transactions takes
// one round trip on a working server; a lost datagram costs up to 3.75 s
// (audit.DefaultRTO, doubling).
const auditTimeout = 30 * time.Second

// selfAudit is the state of the daemon's audit of itself: run at start-up
// and again after each reload, since a reload can change the peer lists.
type selfAudit struct {
	// failures is the last run's failure count (icebox_audit_failures);
	// -1 until a run has ended.
	failures atomic.Int64
	// config is the configuration the next run mints its credential
	// with: the one in force, so a reload that rotates secrets is seen.
	config atomic.Pointer[config.Config]
	// again asks the audit loop for another run (a reload).
	again chan struct{}

	mu sync.Mutex
	// done is closed when the next run to start (pending) or the one
	// running has ended.
	done    chan struct{}
	pending bool
}

func newSelfAudit(cfg *config.Config) *selfAudit {
	a := &selfAudit{again: make(chan struct{}, 1), done: make(chan struct{}), pending: true}
	a.failures.Store(-1)
	a.config.Store(copyConfig(cfg))
	return a
}

// copyConfig is a copy of cfg's fields for a run that starts later: the
// caller of New or Reload may change its Config afterwards.
func copyConfig(cfg *config.Config) *config.Config {
	c := *cfg
	return &c
}

// request asks for a run with cfg after a reload. Requests made before
// the run starts share it.
func (a *selfAudit) request(cfg *config.Config) {
	a.config.Store(copyConfig(cfg))
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.pending {
		a.done, a.pending = make(chan struct{}), true
	}
	// Under mu, so a token in again always goes with pending: start takes
	// both at once (a reload before the first run started used to leave a
	// token for a second run that closed the first run's done again).
	select {
	case a.again <- struct{}{}:
	default: // a run is already asked for
	}
}

// start marks the pending run as started and returns the done channel
// the run closes when it ends. The run covers every request made before
// it, so a request's wake-up still queued is dropped. A run with nothing
// pending (a wake-up sent after the run it asked for had started) gets a
// fresh channel: each channel is closed exactly once.
func (a *selfAudit) start() chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.pending {
		a.done = make(chan struct{})
	}
	a.pending = false
	select {
	case <-a.again: // requests made so far are served by this run
	default:
	}
	return a.done
}

// auditLoop audits this daemon once, then again after each reload, until
// ctx ends.
func (d *Daemon) auditLoop(ctx context.Context) {
	for {
		d.auditOnce(ctx)
		select {
		case <-ctx.Done():
			d.audit.mu.Lock()
			if d.audit.pending {
				close(d.audit.done) // no run will come for it
				d.audit.pending = false
			}
			d.audit.mu.Unlock()
			return
		case <-d.audit.again:
		}
	}
}

// auditOnce runs the cheap part of `icebox audit` against this daemon's
// own TURN server at its advertised address: every TURN check and the
// amplification ratios, without the idle-TCP wait (up to 15 s) and
// without the certificate check (with ACME the certificate may still be on
// its way). It logs one warning per failed check and sets
// icebox_audit_failures.
func (d *Daemon) auditOnce(ctx context.Context) {
	done := d.audit.start()
	defer close(done)
	cfg, ok := d.auditConfig()
	if !ok {
		d.log.Info("audit skipped: no UDP listener")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, auditTimeout)
	defer cancel()
	rs := audit.Run(ctx, cfg)
	if ctx.Err() != nil {
		return // shutting down, or timed out: the results say little
	}
	n := audit.Failures(rs)
	for _, r := range rs {
		if r.Status == audit.Fail {
			d.log.Warn("audit check failed", "check", r.Check, "evidence", r.Evidence)
		}
	}
	d.audit.failures.Store(int64(n))
	if n == 0 {
		d.log.Info("audit passed", "server", cfg.Server, "checks", len(rs))
	}
}

// auditConfig is the audit of the running TURN server: its first UDP
// listener, reached at the advertised public IP when bound to an
// unspecified address,
// with a credential minted for audit.CredentialUser.
func (d *Daemon) auditConfig() (audit.Config, bool) {
	public := d.adv.PublicIP
	cfg := audit.Config{
		PublicIP: public, Realm: d.bound.TURN.Realm,
		RelayMin: d.bound.Parsed.RelayMin, RelayMax: d.bound.Parsed.RelayMax,
		NoIdleWait: true,
	}
	for _, a := range d.turn.Addrs() {
		if u, ok := a.(*net.UDPAddr); ok {
			ap := u.AddrPort()
			ip := ap.Addr().Unmap()
			if ip.IsUnspecified() {
				ip = public
			}
			cfg.Server = netip.AddrPortFrom(ip, ap.Port()).String()
			break
		}
	}
	if cfg.Server == "" {
		return cfg, false
	}
	c := *d.audit.config.Load()
	c.TURN.CredentialTTL = audit.CredentialTTL
	creds, err := Credentials(&c)
	if err == nil {
		cfg.Username, cfg.Password, _ = creds.Mint(audit.CredentialUser, time.Now())
	}
	return cfg, true
}

// AuditDone is closed when the self-audit has ended: the start-up one,
// or after a Reload the one that reload asked for (passed, failed,
// skipped or cut short by shutdown).
func (d *Daemon) AuditDone() <-chan struct{} {
	d.audit.mu.Lock()
	defer d.audit.mu.Unlock()
	return d.audit.done
}

// AuditFailures is the last self-audit's failure count; ok is false until
// one has run to the end.
func (d *Daemon) AuditFailures() (n int, ok bool) {
	v := d.audit.failures.Load()
	return int(v), v >= 0
}
