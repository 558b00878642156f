package e2e

import (
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/icebox-project/icebox/config"
)

// TestStartupAudit: the daemon audits its own TURN server at start-up and
// exports the failure count as icebox_audit_failures: 0 with the
// recommended deny list, and at least the loopback, private and metadata
// peers with allow_peers 0.0.0.0/0. The server runs on 127.0.0.2 so that
// the forbidden peer 127.0.0.1 is not its own public_ip.
func TestStartupAudit(t *testing.T) {
	tests := []struct {
		name     string
		allow    []string
		min, max float64
	}{
		{"recommended deny list", nil, 0, 0},
		{"allow_peers 0.0.0.0/0", []string{"0.0.0.0/0"}, 4, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ib := startIcebox(t, func(c *config.Config) {
				c.PublicIP = "127.0.0.2"
				c.TURN.Listen = []string{"udp://127.0.0.2:0", "tcp://127.0.0.2:0"}
				c.TURN.AllowPeers = tt.allow
			})
			if _, ok := scrape(t, ib)["icebox_audit_failures"]; ok {
				select {
				case <-ib.AuditDone():
				default:
					t.Error("icebox_audit_failures is exported before the audit has run")
				}
			}
			<-ib.AuditDone()
			n, ok := ib.AuditFailures()
			got, exported := scrape(t, ib)["icebox_audit_failures"]
			if !ok || !exported || got != float64(n) {
				t.Fatalf("icebox_audit_failures: exported %v, value %v; the daemon says %d (ran: %v)", exported, got, n, ok)
			}
			if got < tt.min || got > tt.max {
				t.Errorf("icebox_audit_failures %v, want %v to %v", got, tt.min, tt.max)
			}
		})
	}
}

// TestAuditAfterReload: a reload that opens allow_peers to 0.0.0.0/0 is
// audited again, and icebox_audit_failures goes from 0 to the failures.
func TestAuditAfterReload(t *testing.T) {
	ib := startIcebox(t, func(c *config.Config) {
		c.PublicIP = "127.0.0.2"
		c.TURN.Listen = []string{"udp://127.0.0.2:0", "tcp://127.0.0.2:0"}
		c.TURN.AllowPeers = nil
	})
	<-ib.AuditDone()
	if n, ok := ib.AuditFailures(); !ok || n != 0 {
		t.Fatalf("start-up audit: %d failures (ran: %v), want 0", n, ok)
	}
	open := *ib.cfg
	open.TURN.AllowPeers = []string{"0.0.0.0/0"}
	out, err := yaml.Marshal(&open)
	if err != nil {
		t.Fatal(err)
	}
	cfg, p, err := config.FromBytes("reload.yaml", out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ib.Reload(cfg, p); err != nil {
		t.Fatal(err)
	}
	<-ib.AuditDone()
	if got := scrape(t, ib)["icebox_audit_failures"]; got < 4 {
		t.Errorf("icebox_audit_failures after opening allow_peers: got %v, want at least 4", got)
	}
}
