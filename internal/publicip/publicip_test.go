package publicip

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func ifaces(cidrs ...string) Interfaces {
	return func() ([]net.Addr, error) {
		var out []net.Addr
		for _, c := range cidrs {
			ip, n, err := net.ParseCIDR(c)
			if err != nil {
				return nil, err
			}
			n.IP = ip
			out = append(out, n)
		}
		return out, nil
	}
}

// TestAuto: the listeners' one IPv4 address when they all bind it, else
// the first interface address that is IPv4 and neither loopback nor
// link-local, else 127.0.0.1.
func TestAuto(t *testing.T) {
	host := ifaces("127.0.0.1/8", "::1/128", "169.254.3.4/16", "fe80::1/64", "10.1.2.3/24", "192.0.2.9/24")
	for _, tt := range []struct {
		name   string
		listen []string
		ifaces Interfaces
		want   string
		source Source
	}{
		{"loopback listeners", []string{"127.0.0.1:3478", "127.0.0.1:3478", "127.0.0.1:5349"}, host, "127.0.0.1", SourceListener},
		{"localhost", []string{"localhost:3478"}, host, "127.0.0.1", SourceListener},
		{"one private address", []string{"10.1.2.3:3478", "10.1.2.3:443"}, host, "10.1.2.3", SourceListener},
		{"every address", []string{"0.0.0.0:3478"}, host, "10.1.2.3", SourceInterface},
		{"two addresses", []string{"127.0.0.1:3478", "10.1.2.3:3478"}, host, "10.1.2.3", SourceInterface},
		{"an IPv6 listener", []string{"[::1]:3478"}, host, "10.1.2.3", SourceInterface},
		{"dual stack", []string{":443"}, host, "10.1.2.3", SourceInterface},
		{"only loopback and link-local", []string{"0.0.0.0:3478"}, ifaces("127.0.0.1/8", "169.254.9.9/16"), "127.0.0.1", SourceLoopback},
		{"no listeners", nil, ifaces(), "127.0.0.1", SourceLoopback},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := Auto(tt.listen, tt.ifaces)
			if r.Addr.String() != tt.want || r.Source != tt.source {
				t.Errorf("got %s from %s, want %s from %s", r.Addr, r.Source, tt.want, tt.source)
			}
		})
	}
}

// fakeCloud is an instance metadata service of one provider on 127.0.0.1
// (the tests' stand-in for 169.254.169.254), answering addr as the
// provider documents and 404 to every other path, as a real service
// answers other clouds' paths.
func fakeCloud(t *testing.T, provider, addr string) string {
	t.Helper()
	mux := http.NewServeMux()
	switch provider {
	case "aws":
		const token = "tok-123"
		mux.HandleFunc("PUT /latest/api/token", func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
				http.Error(w, "no ttl", http.StatusBadRequest)
				return
			}
			w.Write([]byte(token))
		})
		mux.HandleFunc("GET /latest/meta-data/public-ipv4", func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-aws-ec2-metadata-token") != token {
				http.Error(w, "no token", http.StatusUnauthorized)
				return
			}
			w.Write([]byte(addr))
		})
	case "gcp":
		mux.HandleFunc("GET /computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip", func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Metadata-Flavor") != "Google" {
				http.Error(w, "no flavor", http.StatusForbidden)
				return
			}
			w.Header().Set("Metadata-Flavor", "Google")
			w.Write([]byte(addr))
		})
	case "azure":
		mux.HandleFunc("GET /metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress", func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Metadata") != "true" || r.URL.Query().Get("format") != "text" || r.URL.Query().Get("api-version") == "" {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			w.Write([]byte(addr))
		})
	case "digitalocean":
		mux.HandleFunc("GET /metadata/v1/interfaces/public/0/ipv4/address", func(w http.ResponseWriter, _ *http.Request) {
			w.Write([]byte(addr + "\n"))
		})
	case "hetzner":
		mux.HandleFunc("GET /hetzner/v1/metadata/public-ipv4", func(w http.ResponseWriter, _ *http.Request) {
			w.Write([]byte(addr))
		})
	case "oracle":
		mux.HandleFunc("GET /opc/v2/vnics/", func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer Oracle" {
				http.Error(w, "no auth", http.StatusUnauthorized)
				return
			}
			w.Write([]byte(`[{"vnicId":"ocid1.vnic.x","privateIp":"10.0.0.5","publicIp":"` + addr + `"}]`))
		})
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestMetadata: each provider's documented request gets its address.
func TestMetadata(t *testing.T) {
	for _, p := range []string{"aws", "gcp", "azure", "digitalocean", "hetzner", "oracle"} {
		t.Run(p, func(t *testing.T) {
			t.Parallel()
			base := fakeCloud(t, p, "203.0.113.77")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			addr, provider, err := Metadata(ctx, base)
			if err != nil || provider != p || addr != netip.MustParseAddr("203.0.113.77") {
				t.Fatalf("got %s from %q, %v; want 203.0.113.77 from %s", addr, provider, err, p)
			}
		})
	}
}

// TestMetadataRefusesBadAnswers: an answer that is not a public IPv4
// address, a redirect, or a GCP answer without its header is no answer.
func TestMetadataRefusesBadAnswers(t *testing.T) {
	for _, tt := range []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"private", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("10.0.0.5")) }},
		{"shared", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("100.64.1.1")) }},
		{"link-local", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("169.254.169.254")) }},
		{"IPv6", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("2001:db8::1")) }},
		{"html", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("<html>hello</html>")) }},
		{"huge", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(strings.Repeat("1", maxBody+10))) }},
		{"redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler) // every path, every provider
			defer srv.Close()
			_, provider, err := Metadata(context.Background(), srv.URL)
			if !errors.Is(err, ErrNoAnswer) {
				t.Fatalf("got an address from %q, err %v; want ErrNoAnswer", provider, err)
			}
		})
	}
}

// TestResolveFallsBack: a metadata service that does not answer within
// MetadataTimeout, or refuses every request, leaves the choice to Auto,
// saying why.
func TestResolveFallsBack(t *testing.T) {
	var hung atomic.Int64
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	refusing := httptest.NewServer(http.NotFoundHandler())
	defer refusing.Close()
	for _, tt := range []struct {
		name, base, why string
	}{
		{"silent", slow.URL, "none answered in time"},
		{"404 everywhere", refusing.URL, "status 404"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := Resolve(context.Background(), true, tt.base, []string{"127.0.0.1:3478"}, ifaces("10.1.2.3/24"))
			if r.Source != SourceListener || r.Addr.String() != "127.0.0.1" || r.Provider != "" {
				t.Errorf("got %s from %s %q, want 127.0.0.1 from the listener", r.Addr, r.Source, r.Provider)
			}
			if !errors.Is(r.MetadataErr, ErrNoAnswer) || !strings.Contains(r.MetadataErr.Error(), tt.why) {
				t.Errorf("MetadataErr %v, want ErrNoAnswer saying %q", r.MetadataErr, tt.why)
			}
		})
	}
	if hung.Load() == 0 {
		t.Error("the silent service was never asked")
	}
	// Auto asks nothing.
	r := Resolve(context.Background(), false, slow.URL, []string{"0.0.0.0:3478"}, ifaces("10.1.2.3/24"))
	if r.Source != SourceInterface || r.MetadataErr != nil {
		t.Errorf("auto: got %+v", r)
	}
}
