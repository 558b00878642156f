package main

import (
	"net"
	"net/netip"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/daemon"
)

// pageURL is where a browser opens the call page of cfg, as `icebox
// check-config` prints it (and the package's postinst after it): https
// when http.tls has a certificate or ACME domains; the host is public_host
// (or the first ACME domain), else http.listen's host, else public_ip when
// it is an address. When none names the host (http.listen on every
// interface with public_ip auto or metadata), the host is the placeholder
// "<this host's address>" and ok is false. The port is left out when it
// is the scheme's default.
func pageURL(cfg *config.Config) (u string, ok bool) {
	scheme, defPort := "http", "80"
	if cfg.HTTP.TLS.CertFile != "" || len(cfg.HTTP.TLS.ACMEDomains) > 0 {
		scheme, defPort = "https", "443"
	}
	host, port, _ := net.SplitHostPort(cfg.HTTP.Listen) // validated by config.Load
	ok = true
	if h := daemon.PublicHost(cfg, nil); h != "" {
		host = h
	} else if a, err := netip.ParseAddr(host); host == "" || (err == nil && a.IsUnspecified()) {
		host, ok = "<this host's address>", cfg.Parsed.PublicIP.IsValid()
		if ok {
			host = cfg.Parsed.PublicIP.String()
		}
	}
	if port != defPort {
		host = net.JoinHostPort(host, port)
	} else if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		host = "[" + host + "]"
	}
	return scheme + "://" + host + "/", ok
}
