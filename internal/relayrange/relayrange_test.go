package relayrange

import (
	"encoding/json"
	"net/netip"
	"testing"
)

// TestJSON pins the heartbeat's form of a relay range: nodes of two
// versions must read each other's.
func TestJSON(t *testing.T) {
	tests := []struct {
		r    RelayRange
		want string
	}{
		{RelayRange{Addr: netip.MustParseAddr("203.0.113.7"), Min: 49152, Max: 65535}, `{"addr":"203.0.113.7","Min":49152,"Max":65535}`},
		{RelayRange{Addr: netip.MustParseAddr("2001:db8::1"), Min: 1, Max: 2}, `{"addr":"2001:db8::1","Min":1,"Max":2}`},
		{RelayRange{}, `{"addr":"","Min":0,"Max":0}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.r)
		if err != nil || string(b) != tt.want {
			t.Errorf("Marshal(%v): got %s, %v, want %s", tt.r, b, err, tt.want)
			continue
		}
		var back RelayRange
		if err := json.Unmarshal(b, &back); err != nil || back != tt.r {
			t.Errorf("Unmarshal(%s): got %v, %v, want %v", b, back, err, tt.r)
		}
	}
}
