package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/internal/audit"
	"github.com/icebox-project/icebox/turnsrv"
)

const secret = "audit-config-test-secret"

// auditConfig is AuditConfig of cfg as icebox audit -config builds it.
func auditConfig(cfg *config.Config) (audit.Config, error) {
	adv, _ := ConfigAdvertised(context.Background(), cfg, "")
	return AuditConfig(cfg, adv, time.Now())
}

// TestAuditConfig: listeners on an unspecified address are reached at
// public_ip, port 0 listeners are left for the caller, and the credential
// verifies under the configured secret.
func TestAuditConfig(t *testing.T) {
	tests := []struct {
		name          string
		yml           string
		server, tcp   string
		relayMin      uint16
		wantTLSTarget string
	}{
		{"wildcard listeners", `public_ip: 203.0.113.10
turn: {secrets: ["` + secret + `"]}`, "203.0.113.10:3478", "203.0.113.10:3478", 49152, ""},
		{"bound listeners", `public_ip: 203.0.113.10
turn: {secrets: ["` + secret + `"], listen: ["udp://127.0.0.2:3479", "tcp://127.0.0.2:3480"], relay_ports: "40000-41000"}`,
			"127.0.0.2:3479", "127.0.0.2:3480", 40000, ""},
		{"port 0", `public_ip: 203.0.113.10
turn: {secrets: ["` + secret + `"], listen: ["udp://127.0.0.1:0"]}`, "", "", 49152, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.FromBytes("t.yaml", []byte(tt.yml))
			if err != nil {
				t.Fatal(err)
			}
			a, err := auditConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if a.Server != tt.server || a.TCP != tt.tcp || a.RelayMin != tt.relayMin || a.PublicIP.String() != "203.0.113.10" {
				t.Errorf("got server %q tcp %q relay_min %d public %s; want %q %q %d 203.0.113.10", a.Server, a.TCP, a.RelayMin, a.PublicIP, tt.server, tt.tcp, tt.relayMin)
			}
			if !strings.HasSuffix(a.Username, ":"+audit.CredentialUser) || a.Password != turnsrv.RESTPassword([]byte(secret), a.Username) {
				t.Errorf("credential %q/%q does not verify under the secret", a.Username, a.Password)
			}
		})
	}
}

// TestAuditConfigGeneratedSecret: the secret icebox generated in state_dir
// is used; when there is none the audit says so and creates nothing.
func TestAuditConfigGeneratedSecret(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.FromBytes("t.yaml", []byte("state_dir: "+dir+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auditConfig(cfg); !errors.Is(err, ErrNoSecret) {
		t.Errorf("no generated secret: got %v, want an error saying so", err)
	}
	if _, err := os.Stat(filepath.Join(dir, turnsrv.SecretFile)); err == nil {
		t.Error("the audit created a secret")
	}
	s, err := turnsrv.LoadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auditConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.Password != turnsrv.RESTPassword([]byte(s), a.Username) {
		t.Error("credential not minted with the generated secret")
	}
}
