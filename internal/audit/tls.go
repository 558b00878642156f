package audit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// CheckTLSPrefix starts the name of each TLS check: "tls-certificate
// https", "tls-certificate turns".
const CheckTLSPrefix = "tls-certificate"

// MinCertValidity is how long a certificate must still be valid: two
// weeks leave time to notice a failed renewal (ACME clients renew 30 days
// ahead) and fix it by hand.
const MinCertValidity = 14 * 24 * time.Hour

// tlsChecks dials each TLS endpoint and checks its certificate: it
// verifies against RootCAs for Name (or says why not; Insecure accepts
// that), and must not expire within MinCertValidity.
func tlsChecks(ctx context.Context, cfg Config) []Result {
	if len(cfg.TLS) == 0 {
		return []Result{skip(CheckTLSPrefix, "no TLS configured (no tls:// listener, no https)")}
	}
	var rs []Result
	for _, t := range cfg.TLS {
		rs = append(rs, checkCert(ctx, cfg, t))
	}
	return rs
}

func checkCert(ctx context.Context, cfg Config, t TLSTarget) Result {
	check := CheckTLSPrefix
	if t.What != "" {
		check += " " + t.What
	}
	conf := &tls.Config{
		// Verified below, so that a failure can be told apart from a dial
		// error and -insecure can still check name and expiry.
		InsecureSkipVerify: true, //nolint:gosec
		MinVersion:         tls.VersionTLS12,
	}
	if _, err := netip.ParseAddr(t.Name); err != nil {
		conf.ServerName = t.Name
	}
	d := tls.Dialer{Config: conf, NetDialer: &net.Dialer{Timeout: 10 * time.Second}}
	conn, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return fail(check, "TLS handshake with %s: %v", t.Addr, err)
	}
	state := conn.(*tls.Conn).ConnectionState()
	conn.Close()
	if len(state.PeerCertificates) == 0 {
		return fail(check, "%s sent no certificate", t.Addr)
	}
	leaf := state.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range state.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	now := cfg.Now()
	where := fmt.Sprintf("certificate of %s (%s, expires %s)", t.Addr, leaf.Subject.CommonName, leaf.NotAfter.UTC().Format(time.DateOnly))
	_, verr := leaf.Verify(x509.VerifyOptions{DNSName: t.Name, Roots: cfg.RootCAs, Intermediates: inter, CurrentTime: now})
	note := "verifies for " + t.Name
	if verr != nil {
		if !cfg.Insecure {
			return fail(check, "%s does not verify for %s: %v", where, t.Name, verr)
		}
		if err := leaf.VerifyHostname(t.Name); err != nil {
			return fail(check, "%s: %v", where, err)
		}
		note = fmt.Sprintf("valid for %s; not verified (-insecure): %v", t.Name, verr)
	}
	if left := leaf.NotAfter.Sub(now); left < MinCertValidity {
		return fail(check, "%s expires in %s, within %s", where, left.Round(time.Hour), MinCertValidity)
	}
	return pass(check, "%s %s", where, note)
}
