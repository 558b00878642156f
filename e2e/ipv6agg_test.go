package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/signaling/sigclient"
)

// TestIPv6AggregateLimits: through the whole daemon, a client with a /56
// behind a trusted proxy spreads call page loads and WebSockets over its
// 256 /64s. With the default second tier (/48, 8×), credential minting
// (burst 1) hands out 8 credentials and WebSockets
// (max_connections_per_ip 1) open 8; the rest are refused and counted
// under the aggregate's reason.
func TestIPv6AggregateLimits(t *testing.T) {
	lane(t, laneLight)
	ib := startIcebox(t, func(c *config.Config) {
		c.TURN.CredentialsPerMinute = 1
		c.TURN.CredentialsBurst = 1
		c.Signaling.MaxConnectionsPerIP = 1
		c.HTTP.TrustedProxies = []string{"127.0.0.0/8"}
	})
	room := ib.newRoom(t)
	pages := 0
	for i := range 256 {
		resp, _ := ib.get(t, "/r/"+room, "X-Forwarded-For", fmt.Sprintf("2001:db8:1:ff%02x::1", i))
		switch resp.StatusCode {
		case http.StatusOK:
			pages++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("page from /64 #%d: %d", i, resp.StatusCode)
		}
	}
	if pages != 8 {
		t.Errorf("call pages for 256 /64s of one /56: got %d, want 8", pages)
	}
	ws := 0
	url := "ws" + strings.TrimPrefix(ib.URL, "http") + "/ws"
	for i := range 256 {
		hdr := http.Header{"Origin": {ib.URL}, "X-Forwarded-For": {fmt.Sprintf("2001:db8:2:ff%02x::1", i)}}
		c, err := sigclient.Dial(context.Background(), url, sigclient.DialOptions{Header: hdr})
		var de *sigclient.DialError
		switch {
		case err == nil:
			t.Cleanup(func() { c.Close() })
			ws++
		case errors.As(err, &de) && de.StatusCode == http.StatusTooManyRequests:
		default:
			t.Fatalf("WebSocket from /64 #%d: %v", i, err)
		}
	}
	if ws != 8 {
		t.Errorf("WebSockets from 256 /64s of one /56: got %d, want 8", ws)
	}
	m := scrape(t, ib)
	for name, want := range map[string]float64{
		`icebox_credentials_rate_limited_total{source="page"}`:                 248,
		`icebox_credentials_rate_limited_ipv6_aggregate_total{source="page"}`:  248,
		`icebox_ws_refused_total{reason="per_ipv6_aggregate"}`:                 248,
		`icebox_ws_refused_total{reason="per_ip"}`:                             0,
		`icebox_turn_tcp_refused_total{reason="per_ipv6_aggregate"}`:           0,
		`icebox_turn_allocation_refusals_total{reason="quota_ipv6_aggregate"}`: 0,
	} {
		if v, ok := m[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
}
