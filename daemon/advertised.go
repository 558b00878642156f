package daemon

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/internal/advertise"
)

// Advertised is what this daemon advertises, built once in New from the
// configuration and the listeners as bound: public_ip as resolved (the
// address in XOR-RELAYED-ADDRESS and in the cluster heartbeat), the
// public host name of turns: URLs, and every STUN/TURN URL with its real
// port. The page, /api/v1/ice-servers, welcome, /check, the self-test and
// the self-audit all read it.
func (d *Daemon) Advertised() *advertise.Advertised { return d.adv }

// ConfigAdvertised is what an icebox serving cfg advertises, worked out
// by a command that does not serve it (icebox credentials, selftest,
// audit): public_ip resolved as the daemon resolves it (ResolvePublicIP,
// metadata asked at base; "" is publicip.DefaultMetadataBase), the public
// host name as the daemon works it out (PublicHost, reading the
// certificate file), and the ports as configured. A listener bound to
// port 0 gets its port when the daemon starts, so it cannot be known
// here: it is left out, and skipped lists it.
func ConfigAdvertised(ctx context.Context, cfg *config.Config, base string) (adv *advertise.Advertised, skipped []config.Listener) {
	public := ResolvePublicIP(ctx, &cfg.Parsed, base)
	eps := make([]advertise.Endpoint, 0, len(cfg.Parsed.TURNListen))
	for _, l := range cfg.Parsed.TURNListen {
		port := config.Port(l.Addr)
		if port == 0 {
			skipped = append(skipped, l)
			continue
		}
		eps = append(eps, advertise.Endpoint{Network: l.Network, Port: port})
	}
	return advertise.New(public.Addr, PublicHost(cfg, certFileNames(cfg.HTTP.TLS.CertFile)), eps), skipped
}

// PublicHost is the name TLS clients (browsers on turns: URLs, the audit)
// check the certificate against: public_host, else the first of
// http.tls.acme_domains, else certNames[0] (the certificate's DNS names).
// Empty without any of them: the public IP stands in.
func PublicHost(cfg *config.Config, certNames []string) string {
	switch {
	case cfg.PublicHost != "":
		return cfg.PublicHost
	case len(cfg.HTTP.TLS.ACMEDomains) > 0:
		return cfg.HTTP.TLS.ACMEDomains[0]
	case len(certNames) > 0:
		return certNames[0]
	}
	return ""
}

// certFileNames are the DNS names of the first certificate in the PEM
// file at path; nil when path is "" or the file cannot be read or parsed
// (the daemon refuses to start then; a command says nothing more).
func certFileNames(path string) []string {
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil
	}
	return c.DNSNames
}
