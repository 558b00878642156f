package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/icebox-project/icebox/config"
)

// TestACMEWiring checks how icebox sets up autocert without a CA: only the
// configured names get certificates, TLS-ALPN-01 is offered, certificates
// are cached in state_dir/acme, turns: URLs use the domain, and the plain
// listener answers HTTP-01 challenges itself while redirecting the rest.
func TestACMEWiring(t *testing.T) {
	state := t.TempDir()
	yml := "http:\n  listen: \":443\"\n  tls:\n    acme_domains: [call.example.org]\n    acme_email: ops@example.org\nstate_dir: " + state + "\n"
	cfg, err := config.FromBytes("acme.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	p := &cfg.Parsed
	if !p.TLS || *cfg.HTTP.TLS.RedirectListen != ":80" {
		t.Fatalf("ACME config: TLS %v, redirect_listen %q; want true and :80", p.TLS, *cfg.HTTP.TLS.RedirectListen)
	}
	s, err := newTLSSetup(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.acme.HostPolicy(context.Background(), "call.example.org"); err != nil {
		t.Errorf("configured domain refused: %v", err)
	}
	if err := s.acme.HostPolicy(context.Background(), "evil.example.net"); err == nil {
		t.Error("a domain outside acme_domains would get a certificate")
	}
	if !slices.Contains(s.config.NextProtos, "acme-tls/1") {
		t.Errorf("NextProtos %v lack acme-tls/1 (TLS-ALPN-01)", s.config.NextProtos)
	}
	if slices.Contains(s.turnConfig().NextProtos, "h2") {
		t.Error("TURN TLS offers HTTP protocols")
	}
	if s.host != "call.example.org" {
		t.Errorf("turns: host %q, want call.example.org", s.host)
	}
	if s.acme.Email != "ops@example.org" {
		t.Errorf("contact email %q", s.acme.Email)
	}
	if err := s.acme.Cache.Put(context.Background(), "probe", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(state, "acme", "probe")); err != nil {
		t.Errorf("cache not in state_dir/acme: %v", err)
	}

	rec := httptest.NewRecorder()
	s.redirect.ServeHTTP(rec, httptest.NewRequest("GET", "http://call.example.org/r/room?x=1", nil))
	if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "https://call.example.org/r/room?x=1" {
		t.Errorf("redirect: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	rec = httptest.NewRecorder()
	s.redirect.ServeHTTP(rec, httptest.NewRequest("GET", "http://call.example.org/.well-known/acme-challenge/token", nil))
	if rec.Code == http.StatusMovedPermanently {
		t.Error("HTTP-01 challenge path was redirected instead of answered")
	}
}
