package clientaddr

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

// TestRequestKey: the key comes from X-Forwarded-For only behind a
// trusted proxy, and IPv6 clients in one /64 share it.
func TestRequestKey(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tests := []struct {
		remote, xff, want string
	}{
		{"198.51.100.1:4000", "", "198.51.100.1/32"},
		{"198.51.100.1:4000", "203.0.113.9", "198.51.100.1/32"}, // untrusted peer: header ignored
		{"127.0.0.1:4000", "2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"127.0.0.1:4000", "2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"},
		{"127.0.0.1:4000", "::ffff:203.0.113.9", "203.0.113.9/32"},
		{"[2001:db8:9::1]:4000", "", "2001:db8:9::/64"},
		{"127.0.0.1:4000", "not-an-address", "127.0.0.1/32"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := (Keyer{}).RequestKey(r, trusted); got != tt.want {
			t.Errorf("%s with X-Forwarded-For %q: got %s, want %s", tt.remote, tt.xff, got, tt.want)
		}
	}
}
