package daemon

import (
	"crypto/tls"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
	"golang.org/x/crypto/acme"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/turnsrv"
)

// loopbackDNS answers every A query with 127.0.0.1 and everything else
// (AAAA, CAA) with no records, over TCP as pebble's VA asks.
func loopbackDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// TestACMEWithPebble gets a certificate through icebox's autocert setup
// from an in-process ACME server (pebble): TLS-ALPN-01 is answered on
// icebox's HTTPS listener, and the certificate then served for the domain
// is the one pebble issued. The same through the listener HTTPS shares
// with TURN over TLS (turn.share_http_listen), where the challenge's ALPN
// protocol (acme-tls/1) must reach the certificate manager.
func TestACMEWithPebble(t *testing.T) {
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	for _, shared := range []bool{false, true} {
		t.Run(map[bool]string{false: "https listener", true: "shared with turn"}[shared], func(t *testing.T) {
			acmeWithPebble(t, shared)
		})
	}
}

func acmeWithPebble(t *testing.T, shared bool) {
	const domain = "call.icebox.test"
	yml := "http:\n  listen: \"127.0.0.1:0\"\n  tls:\n    acme_domains: [" + domain + "]\n    redirect_listen: \"\"\nstate_dir: " + t.TempDir() + "\n"
	cfg, err := config.FromBytes("acme.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	setup, err := newTLSSetup(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}

	// icebox's HTTPS listener, with the autocert TLS config, or the
	// listener it shares with TURN over TLS.
	web := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "icebox") })}
	var httpsAddr string
	if shared {
		creds, err := turnsrv.NewCredentials("icebox", []string{"acme-shared-secret-0123456789"}, time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		ts, err := turnsrv.New(turnsrv.Config{Realm: "icebox", Credentials: creds, PublicIP: netip.MustParseAddr("127.0.0.1"),
			Listeners: []turnsrv.Listener{{Network: "tls", Addr: "127.0.0.1:0", TLS: setup.sharedConfig(), ShareHTTP: true}},
			Logger:    slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ts.Close() })
		go func() { _ = web.Serve(ts.HTTPListener()) }()
		httpsAddr = ts.Addrs()[0].String()
	} else {
		httpsLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = web.Serve(tls.NewListener(httpsLn, setup.config)) }()
		httpsAddr = httpsLn.Addr().String()
	}
	t.Cleanup(func() { web.Close() })
	_, portStr, _ := net.SplitHostPort(httpsAddr)
	port, _ := strconv.Atoi(portStr)

	// pebble, validating TLS-ALPN-01 at icebox's HTTPS port.
	logger := log.New(io.Discard, "", 0)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, 0, port, false, loopbackDNS(t), store)
	front := wfe.New(logger, store, validator, authority, nil, false, false, 0, 0)
	acmeSrv := httptest.NewTLSServer(finalizeLocation(front.Handler()))
	t.Cleanup(acmeSrv.Close)
	setup.acme.Client = &acme.Client{DirectoryURL: acmeSrv.URL + "/dir", HTTPClient: acmeSrv.Client()}

	// A browser-like handshake for the domain triggers issuance.
	var conn *tls.Conn
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 20 * time.Second}, "tcp", httpsAddr,
			&tls.Config{ServerName: domain, InsecureSkipVerify: true}) //nolint:gosec // checked below against pebble's chain.
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("TLS handshake for %s: %v", domain, err)
	}
	defer conn.Close()
	leaf := conn.ConnectionState().PeerCertificates[0]
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != domain {
		t.Errorf("certificate names %v, want [%s]", leaf.DNSNames, domain)
	}
	if !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
		t.Errorf("issuer %q, want pebble's intermediate", leaf.Issuer.CommonName)
	}
	if err := leaf.CheckSignatureFrom(authority.GetIntermediateCert(0).Cert); err != nil {
		t.Errorf("certificate not signed by the ACME server's intermediate: %v", err)
	}
}

// finalizeLocation adds the order URL as Location to finalize responses.
// Let's Encrypt sends it; pebble no longer does (letsencrypt/pebble#508),
// and x/crypto/acme polls that URL after finalizing (golang/go#77704).
func finalizeLocation(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := strings.CutPrefix(r.URL.Path, "/finalize-order/"); ok {
			w.Header().Set("Location", "https://"+r.Host+"/my-order/"+id)
		}
		next.ServeHTTP(w, r)
	})
}
