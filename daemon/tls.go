package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/turnsrv"
)

// certPollInterval is how often certificate files are checked for change.
const certPollInterval = 30 * time.Second

// certFiles serves a certificate kept in PEM files, re-read when the files
// change (checked every certPollInterval) and on Reload.
type certFiles struct {
	certFile, keyFile string
	log               *slog.Logger
	cert              atomic.Pointer[tls.Certificate]
	mu                sync.Mutex
	stamp             string // modification times of both files
}

func newCertFiles(certFile, keyFile string, log *slog.Logger) (*certFiles, error) {
	c := &certFiles{certFile: certFile, keyFile: keyFile, log: log}
	if _, err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certFiles) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cert.Load(), nil
}

func (c *certFiles) fileStamp() (string, error) {
	var stamp string
	for _, f := range []string{c.certFile, c.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		stamp += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return stamp, nil
}

// reload reads the files when they changed; changed reports whether a new
// certificate is in use. A bad pair keeps the current certificate.
func (c *certFiles) reload() (changed bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stamp, err := c.fileStamp()
	if err != nil {
		return false, &config.Error{Key: "http.tls.cert_file", Reason: err.Error()}
	}
	if stamp == c.stamp {
		return false, nil
	}
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return false, &config.Error{Key: "http.tls.cert_file", Reason: err.Error()}
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return false, &config.Error{Key: "http.tls.cert_file", Reason: err.Error()}
	}
	pair.Leaf = leaf
	c.cert.Store(&pair)
	c.stamp = stamp
	c.log.Info("tls certificate loaded", "file", c.certFile, "names", leaf.DNSNames, "not_after", leaf.NotAfter.Format(time.RFC3339))
	return true, nil
}

// watch polls the files until ctx ends.
func (c *certFiles) watch(ctx context.Context) {
	t := time.NewTicker(certPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := c.reload(); err != nil {
				c.log.Warn("tls certificate not reloaded; the current one stays", "error", err)
			}
		}
	}
}

// tlsSetup is the certificate machinery for one daemon: the TLS config
// for HTTPS and TURN over TLS, the host name for turns: URLs, and the
// handler of the plain-HTTP redirect listener.
type tlsSetup struct {
	config   *tls.Config
	files    *certFiles        // nil with ACME
	acme     *autocert.Manager // nil with files
	host     string            // for turns: URLs
	redirect http.Handler
}

func newTLSSetup(cfg *config.Config, log *slog.Logger) (*tlsSetup, error) {
	t := cfg.HTTP.TLS
	s := &tlsSetup{}
	toHTTPS := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		if _, port, _ := net.SplitHostPort(cfg.HTTP.Listen); port != "" && port != "443" {
			host = net.JoinHostPort(host, port)
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusMovedPermanently)
	})
	if len(t.ACMEDomains) > 0 {
		m := &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			Cache:      autocert.DirCache(filepath.Join(cfg.StateDir, "acme")),
			HostPolicy: autocert.HostWhitelist(t.ACMEDomains...),
			Email:      t.ACMEEmail,
		}
		if t.ACMEDirectory != "" {
			m.Client = &acme.Client{DirectoryURL: t.ACMEDirectory}
		}
		s.acme, s.config = m, m.TLSConfig()
		s.redirect = m.HTTPHandler(toHTTPS)
		log.Info("tls certificates by ACME", "domains", t.ACMEDomains, "cache", filepath.Join(cfg.StateDir, "acme"))
	} else {
		files, err := newCertFiles(t.CertFile, t.KeyFile, log)
		if err != nil {
			return nil, err
		}
		s.files = files
		s.config = &tls.Config{GetCertificate: files.getCertificate, NextProtos: []string{"h2", "http/1.1"}}
		s.host = PublicHost(cfg, files.cert.Load().Leaf.DNSNames)
		s.redirect = toHTTPS
	}
	s.config.MinVersion = tls.VersionTLS12
	if s.acme != nil {
		s.host = PublicHost(cfg, nil)
	}
	return s, nil
}

// turnConfig is the TLS config for TURN listeners: the same certificate,
// no HTTP application protocols.
func (s *tlsSetup) turnConfig() *tls.Config {
	c := s.config.Clone()
	c.NextProtos = nil
	return c
}

// sharedConfig is the TLS config of the listener HTTPS shares with TURN
// over TLS: the same certificate, and TURN's application protocol (ALPN
// "stun.turn", RFC 7443) before HTTP's, which tells the connections apart.
// The server's order decides (crypto/tls), and TURN clients such as
// coturn's offer "http/1.1" too, while browsers never offer "stun.turn".
func (s *tlsSetup) sharedConfig() *tls.Config {
	c := s.config.Clone()
	c.NextProtos = append([]string{turnsrv.ALPNTURN}, c.NextProtos...)
	return c
}
