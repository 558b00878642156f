package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icebox-project/icebox/config"
)

// TestPageURL: the URL check-config (and the package's postinst) prints
// for the call page, from http.listen, http.tls, public_host and public_ip.
func TestPageURL(t *testing.T) {
	tests := []struct {
		name, yml, want string
		ok              bool
	}{
		{"defaults", "", "http://127.0.0.1:8080/", true},
		{"acme on 443", "http:\n  listen: \":443\"\n  tls: {acme_domains: [call.example.org]}\n", "https://call.example.org/", true},
		{"public_host, other port", "public_host: call.example.org\nhttp:\n  listen: \"0.0.0.0:8443\"\n", "http://call.example.org:8443/", true},
		{"every interface, public_ip", "public_ip: 198.51.100.4\nhttp:\n  listen: \"0.0.0.0:80\"\n", "http://198.51.100.4/", true},
		{"every interface, auto", "http:\n  listen: \":8080\"\n", "http://<this host's address>:8080/", false},
		{"IPv6 listener", "http:\n  listen: \"[2001:db8::1]:80\"\n", "http://[2001:db8::1]/", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "icebox.yaml")
			if err := os.WriteFile(path, []byte(tt.yml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := pageURL(cfg); got != tt.want || ok != tt.ok {
				t.Errorf("got %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestHelp: `icebox help` lists every command run accepts.
func TestHelp(t *testing.T) {
	var out strings.Builder
	if err := run(t.Context(), []string{"help"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"check-config", "credentials", "selftest", "audit", "cluster status", "version", "help"} {
		if !strings.Contains(out.String(), "\n  icebox "+cmd+" ") {
			t.Errorf("icebox help does not list %q:\n%s", cmd, out.String())
		}
	}
}
