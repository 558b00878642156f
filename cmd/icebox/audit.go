package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pion/stun/v3"

	"github.com/icebox-project/icebox/daemon"
	"github.com/icebox-project/icebox/internal/audit"
	"github.com/icebox-project/icebox/turnsrv"
)

// auditCmd is `icebox audit -config FILE` or `icebox audit
// turn:HOST:PORT -secret S`: it checks a running server from the outside
// and prints one line per check. It returns an error (exit 1) when a
// check fails.
func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("audit", stderr)
	server := f.fs.String("server", "", "TURN UDP `host:port` to audit instead of the one the config names")
	tcp := f.fs.String("tcp", "", "TURN TCP `host:port` for the idle-connection check; \"off\" skips it (default: the config's tcp:// listener, or the turn: address)")
	secret := f.fs.String("secret", "", "TURN REST `secret` to mint the audit's credential with (turn: mode)")
	secretFile := f.fs.String("secret-file", "", "`file` holding the TURN REST secret (turn: mode; unlike -secret, not visible in the process list)")
	realm := f.fs.String("realm", "icebox", "REALM the secret belongs to (turn: mode)")
	tlsAddr := f.fs.String("tls", "", "TLS `host:port` whose certificate to check (turn: mode; with -config: the tls:// listener and https)")
	host := f.fs.String("public-host", "", "`name` the certificate must be valid for (default: public_host, or the host of -tls)")
	httpAddr := f.fs.String("http", "", "web server `host:port` (HTTP or HTTPS) for the connection-cap check; \"off\" skips it (default: the config's http.listen; turn: mode: off)")
	idle := f.fs.Duration("idle-wait", audit.DefaultIdleWait, "how long a silent TCP connection may stay open")
	peerPort := f.fs.Uint("peer-port", 0, "`port` to ask for with the forbidden peers (default: the port of the audit's own relayed address)")
	insecure := f.fs.Bool("insecure", false, "accept a TLS certificate that does not verify against the system roots (self-signed labs); name and expiry are still checked")
	var target string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		target, args = args[0], args[1:]
	}
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	if target == "" && f.fs.NArg() > 0 {
		target = f.fs.Arg(0)
	}
	var cfg audit.Config
	if target != "" {
		u, err := stun.ParseURI(target)
		if err != nil || (u.Scheme != stun.SchemeTypeTURN && u.Scheme != stun.SchemeTypeSTUN) {
			return fmt.Errorf("%q is not a turn:HOST:PORT address", target)
		}
		port := u.Port
		if port == 0 {
			port = 3478
		}
		addr := net.JoinHostPort(u.Host, strconv.Itoa(port))
		cfg = audit.Config{Server: addr, TCP: addr, Realm: *realm}
		if *secretFile != "" {
			data, err := os.ReadFile(*secretFile)
			if err != nil {
				return err
			}
			*secret = strings.TrimSpace(string(data))
		}
		if *secret != "" {
			creds, err := turnsrv.NewCredentials(*realm, []string{*secret}, audit.CredentialTTL, nil)
			if err != nil {
				return err
			}
			cfg.Username, cfg.Password, _ = creds.Mint(audit.CredentialUser, time.Now())
		}
		if *tlsAddr != "" {
			name := *host
			if name == "" {
				name, _, _ = net.SplitHostPort(*tlsAddr)
			}
			cfg.TLS = []audit.TLSTarget{{Addr: *tlsAddr, Name: name, What: "tls"}}
		}
	} else {
		c, err := f.load()
		if err != nil {
			return err
		}
		adv, _ := daemon.ConfigAdvertised(ctx, c, "")
		if cfg, err = daemon.AuditConfig(c, adv, time.Now()); err != nil {
			return err
		}
		if *host != "" {
			for i := range cfg.TLS {
				cfg.TLS[i].Name = *host
			}
		}
	}
	if *server != "" {
		cfg.Server = *server
	}
	if *tcp != "" {
		cfg.TCP = *tcp
	}
	if cfg.TCP == "off" {
		cfg.TCP = ""
	}
	if *httpAddr != "" {
		cfg.HTTP = *httpAddr
	}
	if cfg.HTTP == "off" {
		cfg.HTTP = ""
	}
	if cfg.Server == "" {
		return errors.New("turn.listen has no udp:// listener with a fixed port: give -server host:port")
	}
	if *peerPort > 65535 {
		return fmt.Errorf("-peer-port %d is not a port", *peerPort)
	}
	cfg.IdleWait, cfg.Insecure, cfg.PeerPort = *idle, *insecure, uint16(*peerPort)
	if n := audit.Print(stdout, audit.Run(ctx, cfg)); n > 0 {
		return fmt.Errorf("audit: %d check(s) failed", n)
	}
	return nil
}
