package publicip

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestMetadataRefusesNonPublic: an answer that is an IPv4 address no one
// on the internet can reach the relay at, from any of the IANA
// special-purpose blocks that are not globally reachable (RFC 6890), is
// no answer. (The documentation blocks of RFC 5737 stay accepted: tests
// use them as stand-ins for public addresses.)
func TestMetadataRefusesNonPublic(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{
		"0.0.0.0", "0.1.2.3", // "this network", RFC 791
		"10.0.0.5", "172.16.0.1", "192.168.1.1", // private, RFC 1918
		"100.64.1.1",      // shared (CGNAT), RFC 6598
		"127.0.0.1",       // loopback
		"169.254.169.254", // link-local
		"192.0.0.8",       // IETF protocol assignments, RFC 6890 §2.1
		"192.88.99.1",     // 6to4 relay anycast, RFC 7526
		"198.18.0.1",      // benchmarking, RFC 2544
		"224.0.0.1",       // multicast
		"240.0.0.1",       // reserved, RFC 1112
		"255.255.255.255", // limited broadcast
		"::ffff:10.0.0.5", // a private address, IPv4-mapped
		"64:ff9b::a00:5",  // NAT64 of 10.0.0.5 (and IPv6 at all)
		"1.2.3.4 5.6.7.8", "1.2.3.4\n5.6.7.8", "01.2.3.4", "1.2.3.4%eth0", "[1.2.3.4]", "1.2.3.4:80",
	} {
		t.Run(addr, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Metadata-Flavor", "Google")
				w.Write([]byte(addr))
			}))
			defer srv.Close()
			got, provider, err := Metadata(context.Background(), srv.URL)
			if !errors.Is(err, ErrNoAnswer) {
				t.Fatalf("took %s from %q (err %v); want ErrNoAnswer", got, provider, err)
			}
		})
	}
	// A public address, mapped or not, is taken.
	for _, addr := range []string{"8.8.4.4", "::ffff:8.8.4.4", " 8.8.4.4\n"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Metadata-Flavor", "Google")
			w.Write([]byte(addr))
		}))
		got, _, err := Metadata(context.Background(), srv.URL)
		srv.Close()
		if err != nil || got.String() != "8.8.4.4" {
			t.Errorf("answer %q: got %s, %v; want 8.8.4.4", addr, got, err)
		}
	}
}
