package audit

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/turnsrv"
)

// CredentialTTL is the lifetime of the credential the audit mints for
// itself: long enough for every check, short enough to be worthless if
// it leaked.
const CredentialTTL = 5 * time.Minute

// CredentialUser is the user id of the audit's credentials, so its
// allocations are told apart in logs and quotas.
const CredentialUser = "audit"

// FromConfig is the audit of the icebox that cfg describes, as seen from
// outside: the first udp:// and tcp:// listeners (one bound to 0.0.0.0
// or :: is reached at public_ip), the realm, the relay port range, the
// TLS endpoints at public_host, and a credential minted now for
// CredentialUser with the signing secret (turn.secrets, or the one icebox
// generated in state_dir, which is read but never created).
//
// A listener bound to port 0 (chosen at start-up) is left out: Server or
// TCP stays empty and the caller names the address. Errors: no readable
// secret, or an address that does not parse.
func FromConfig(cfg *config.Config, now time.Time) (Config, error) {
	p := &cfg.Parsed
	public := p.PublicIP
	if !public.IsValid() {
		public = turnsrv.DefaultPublicIP()
	}
	a := Config{
		PublicIP: public, Realm: cfg.TURN.Realm, LocalHost: true,
		RelayMin: p.RelayMin, RelayMax: p.RelayMax,
	}
	host := publicHost(cfg, public)
	for _, l := range p.TURNListen {
		addr, err := reachAt(l.Addr, public)
		if err != nil {
			return Config{}, fmt.Errorf("turn.listen %s://%s: %w", l.Network, l.Addr, err)
		}
		switch {
		case addr == "":
		case l.Network == "udp" && a.Server == "":
			a.Server = addr
		case l.Network == "tcp" && a.TCP == "":
			a.TCP = addr
		case l.Network == "tls":
			a.TLS = append(a.TLS, TLSTarget{Addr: addr, Name: host, What: "turns"})
		}
	}
	if addr, err := reachAt(cfg.HTTP.Listen, public); err == nil {
		a.HTTP, a.HTTPS = addr, p.TLS
	}
	if p.TLS {
		addr, err := reachAt(cfg.HTTP.Listen, public)
		if err != nil {
			return Config{}, fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err)
		}
		if addr != "" && !hasTarget(a.TLS, addr) {
			a.TLS = append(a.TLS, TLSTarget{Addr: addr, Name: host, What: "https"})
		}
	}
	secrets := cfg.TURN.Secrets
	if len(secrets) == 0 {
		path := filepath.Join(cfg.StateDir, turnsrv.SecretFile)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return Config{}, fmt.Errorf("turn.secrets is empty and %s does not exist: is icebox running with this state_dir?", path)
		}
		s, err := turnsrv.LoadOrCreateSecret(cfg.StateDir) // exists: read only
		if err != nil {
			return Config{}, fmt.Errorf("the generated TURN secret: %w (run as the icebox user or root)", err)
		}
		secrets = []string{s}
	}
	creds, err := turnsrv.NewCredentials(cfg.TURN.Realm, secrets, CredentialTTL, nil)
	if err != nil {
		return Config{}, err
	}
	a.Username, a.Password, _ = creds.Mint(CredentialUser, now)
	return a, nil
}

// reachAt is the address a client reaches a listener bound at hostport
// at: public for an unspecified host; "" for port 0.
func reachAt(hostport string, public netip.Addr) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", err
	}
	if n, _ := strconv.Atoi(port); n == 0 {
		return "", nil
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = public.String()
	}
	return net.JoinHostPort(host, port), nil
}

// publicHost is the name TLS clients check the certificate against, as
// the daemon works it out: public_host, else the first ACME domain, else
// the first DNS name of the certificate file, else public_ip.
func publicHost(cfg *config.Config, public netip.Addr) string {
	switch t := cfg.HTTP.TLS; {
	case cfg.PublicHost != "":
		return cfg.PublicHost
	case len(t.ACMEDomains) > 0:
		return t.ACMEDomains[0]
	case t.CertFile != "":
		if data, err := os.ReadFile(t.CertFile); err == nil {
			if b, _ := pem.Decode(data); b != nil {
				if c, err := x509.ParseCertificate(b.Bytes); err == nil && len(c.DNSNames) > 0 {
					return c.DNSNames[0]
				}
			}
		}
	}
	return public.String()
}

func hasTarget(ts []TLSTarget, addr string) bool {
	for _, t := range ts {
		if t.Addr == addr {
			return true
		}
	}
	return false
}
