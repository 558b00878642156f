package e2e

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/internal/turntest"
)

// TestAPIKeys: /api/v1/ice-servers needs a configured Bearer key, and the
// credential it returns allocates on icebox's TURN.
func TestAPIKeys(t *testing.T) {
	lane(t, laneLight)
	const key = "api-key-0123456789abcdef"
	ib := startIcebox(t, func(c *config.Config) { c.HTTP.APIKeys = []string{key} })
	for _, auth := range []string{"", "Bearer nope-nope-nope-nope", key} {
		req, _ := http.NewRequest("GET", ib.URL+"/api/v1/ice-servers", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Authorization %q: got %d, want 401", auth, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("GET", ib.URL+"/api/v1/ice-servers?user=app1", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rc struct {
		rtcConfiguration
		TTL int `json:"ttl"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rc); err != nil || resp.StatusCode != 200 {
		t.Fatalf("got %d %v", resp.StatusCode, err)
	}
	if rc.TTL != 3600 || len(rc.ICEServers) != 2 {
		t.Fatalf("got %+v", rc)
	}
	var udp string
	for _, a := range ib.TURN().Addrs() {
		if a.Network() == "udp" {
			udp = a.String()
		}
	}
	turntest.MustAllocate(t, udp, rc.ICEServers[1].Username, rc.ICEServers[1].Credential)
}
