package e2e

import (
	"bufio"
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/daemon"
	"github.com/icebox-project/icebox/internal/audit"
)

// TestStartupAudit: the daemon audits its own TURN server at start-up and
// exports the failure count as icebox_audit_failures: 0 with the
// recommended deny list, and at least the loopback, private and metadata
// peers with allow_peers 0.0.0.0/0. The server runs on 127.0.0.2 so that
// the forbidden peer 127.0.0.1 is not its own public_ip.
func TestStartupAudit(t *testing.T) {
	lane(t, laneLight)
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
			<-ib.AuditDone()
			n, ok := ib.AuditFailures()
			got, exported := auditGauge(t, ib)
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
	lane(t, laneLight)
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
	cfg, err := config.FromBytes("reload.yaml", out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ib.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	<-ib.AuditDone()
	if got, _ := auditGauge(t, ib); got < 4 {
		t.Errorf("icebox_audit_failures after opening allow_peers: got %v, want at least 4", got)
	}
}

// TestAuditTLS: the audit checks the certificate of icebox's HTTPS and
// TURN-over-TLS listeners against public_host (localhost, the
// certificate's name): a month left passes, an hour left fails.
func TestAuditTLS(t *testing.T) {
	lane(t, laneLight)
	tests := []struct {
		name  string
		valid time.Duration
		want  audit.Status
	}{
		{"a month left", 30 * 24 * time.Hour, audit.Pass},
		{"an hour left", time.Hour, audit.Fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := newTestCA(t)
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
			ca.issueUntil(t, 7, time.Now().Add(tt.valid), certFile, keyFile)
			off := ""
			ib := startIcebox(t, func(c *config.Config) {
				c.HTTP.TLS.CertFile, c.HTTP.TLS.KeyFile = certFile, keyFile
				c.HTTP.TLS.RedirectListen = &off
				c.TURN.Listen = append(c.TURN.Listen, "tls://127.0.0.1:0")
			})
			a, err := daemon.AuditConfig(ib.cfg, ib.Advertised(), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			// The listeners are on port 0: name the bound addresses.
			a.Server, a.TCP = ib.TURN().Addrs()[0].String(), ""
			a.TLS = []audit.TLSTarget{
				{Addr: ib.HTTPAddr().String(), Name: "localhost", What: "https"},
				{Addr: ib.TURN().Addrs()[2].String(), Name: "localhost", What: "turns"},
			}
			a.RootCAs = ca.pool
			var tlsResults int
			for _, r := range audit.Run(context.Background(), a) {
				if !strings.HasPrefix(r.Check, audit.CheckTLSPrefix) {
					continue
				}
				tlsResults++
				if r.Status != tt.want || !strings.Contains(r.Evidence, "localhost") {
					t.Errorf("got %q, want %s", r, tt.want)
				}
			}
			if tlsResults != 2 {
				t.Errorf("%d TLS results, want 2 (https and turns)", tlsResults)
			}
		})
	}
}

// auditGauge reads icebox_audit_failures from /metrics; ok is false when
// it is not exported.
func auditGauge(t *testing.T, ib *icebox) (v float64, ok bool) {
	t.Helper()
	resp, err := http.Get("http://" + ib.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, found := strings.CutPrefix(sc.Text(), "icebox_audit_failures "); found {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("bad sample %q", sc.Text())
			}
			return v, true
		}
	}
	return 0, false
}
