package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/internal/advertise"
	"github.com/icebox-project/icebox/internal/audit"
)

// AuditConfig is the audit (icebox audit -config) of the icebox that cfg
// describes and adv says it advertises (ConfigAdvertised), as seen from
// outside: the first udp:// and tcp:// listeners (one bound to 0.0.0.0
// or :: is reached at adv.PublicIP), the realm, the relay port range, the
// TLS endpoints checked against adv.PublicHost (else the public IP), and
// a credential minted at now for audit.CredentialUser, valid for
// audit.CredentialTTL, with the signing secret (ExistingCredentials: the
// generated one is read, never created).
//
// A listener bound to port 0 (chosen at start-up) is left out: Server or
// TCP stays empty and the caller names the address. Errors: no secret
// (ErrNoSecret), or an address that does not parse.
func AuditConfig(cfg *config.Config, adv *advertise.Advertised, now time.Time) (audit.Config, error) {
	p := &cfg.Parsed
	public := adv.PublicIP
	a := audit.Config{
		PublicIP: public, Realm: cfg.TURN.Realm, LocalHost: true,
		RelayMin: p.RelayMin, RelayMax: p.RelayMax,
	}
	host := adv.PublicHost
	if host == "" {
		host = public.String()
	}
	for _, l := range p.TURNListen {
		addr, err := reachAt(l.Addr, public)
		if err != nil {
			return audit.Config{}, fmt.Errorf("turn.listen %s://%s: %w", l.Network, l.Addr, err)
		}
		switch {
		case addr == "":
		case l.Network == "udp" && a.Server == "":
			a.Server = addr
		case l.Network == "tcp" && a.TCP == "":
			a.TCP = addr
		case l.Network == "tls":
			a.TLS = append(a.TLS, audit.TLSTarget{Addr: addr, Name: host, What: "turns"})
		}
	}
	if addr, err := reachAt(cfg.HTTP.Listen, public); err == nil {
		a.HTTP, a.HTTPS = addr, p.TLS
	}
	if p.TLS {
		addr, err := reachAt(cfg.HTTP.Listen, public)
		if err != nil {
			return audit.Config{}, fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err)
		}
		if addr != "" && !hasTarget(a.TLS, addr) {
			a.TLS = append(a.TLS, audit.TLSTarget{Addr: addr, Name: host, What: "https"})
		}
	}
	c := *cfg
	c.TURN.CredentialTTL = audit.CredentialTTL
	creds, err := ExistingCredentials(&c)
	if err != nil {
		return audit.Config{}, err
	}
	a.Username, a.Password, _ = creds.Mint(audit.CredentialUser, now)
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

func hasTarget(ts []audit.TLSTarget, addr string) bool {
	for _, t := range ts {
		if t.Addr == addr {
			return true
		}
	}
	return false
}
