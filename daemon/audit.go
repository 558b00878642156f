package daemon

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/icebox-project/icebox/internal/audit"
)

// auditTimeout bounds the start-up audit. Each of its dozen transactions
// takes one round trip on a working server; a lost datagram costs up to
// 3.75 s (audit.DefaultRTO, doubling).
const auditTimeout = 30 * time.Second

// startupAudit runs the cheap part of `icebox audit` against this
// daemon's own TURN server at its advertised address: every TURN check and
// the amplification ratios, without the idle-TCP wait (up to 15 s) and
// without the certificate check (with ACME the certificate may still be on
// its way). It logs one warning per failed check and sets
// icebox_audit_failures.
func (d *Daemon) startupAudit(ctx context.Context) {
	defer close(d.auditDone)
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
	d.auditFailures.Store(int64(n))
	if n == 0 {
		d.log.Info("audit passed", "server", cfg.Server, "checks", len(rs))
	}
}

// auditConfig is the audit of the running TURN server: its first UDP
// listener, reached at public_ip when bound to an unspecified address,
// with a credential minted for audit.CredentialUser.
func (d *Daemon) auditConfig() (audit.Config, bool) {
	public := d.turn.PublicIP()
	cfg := audit.Config{
		PublicIP: public, Realm: d.bound.TURN.Realm,
		RelayMin: d.boundParsed.RelayMin, RelayMax: d.boundParsed.RelayMax,
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
	c := *d.bound
	c.TURN.CredentialTTL = audit.CredentialTTL
	creds, err := Credentials(&c)
	if err == nil {
		cfg.Username, cfg.Password, _ = creds.Mint(audit.CredentialUser, time.Now())
	}
	return cfg, true
}

// AuditDone is closed when the start-up audit has ended (passed, failed,
// skipped or cut short by shutdown).
func (d *Daemon) AuditDone() <-chan struct{} { return d.auditDone }

// AuditFailures is the start-up audit's failure count; ok is false until
// it has run to the end.
func (d *Daemon) AuditFailures() (n int, ok bool) {
	v := d.auditFailures.Load()
	return int(v), v >= 0
}
