package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/internal/rtc"
	"github.com/icebox-project/icebox/signaling/sigclient"
	"github.com/icebox-project/icebox/signaling/wire"
)

// fakeMetadata is an AWS-style instance metadata service (IMDSv2) on
// 127.0.0.1 port 0 that answers public-ipv4 with ip; its URL is the base
// for Options.MetadataBase.
func fakeMetadata(t *testing.T, ip string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "PUT /latest/api/token":
			w.Write([]byte("fake-token"))
		case "GET /latest/meta-data/public-ipv4":
			if r.Header.Get("X-aws-ec2-metadata-token") != "fake-token" {
				http.Error(w, "no token", http.StatusUnauthorized)
				return
			}
			w.Write([]byte(ip))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// advertisedDaemon serves a daemon on loopback with public_ip: metadata,
// the metadata service a fake answering public, TURN on udp and tcp port
// 0, and extra appended to the config, until the test ends.
func advertisedDaemon(t *testing.T, public, extra string) *Daemon {
	t.Helper()
	state := t.TempDir()
	yml := fmt.Sprintf(`public_ip: metadata
http: {listen: "127.0.0.1:0"}
turn:
  listen: ["udp://127.0.0.1:0", "tcp://127.0.0.1:0"]
  secrets: ["advertised-turn-secret-0123456789"]
metrics: {listen: ""}
state_dir: %q
`, state) + extra
	cfg, err := config.FromBytes("advertised.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	d := serve(t, cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MetadataBase: fakeMetadata(t, public)})
	if got := d.TURN().PublicIP().String(); got != public {
		t.Fatalf("relayed address %s, want %s (the metadata service's)", got, public)
	}
	return d
}

// TestAdvertisedOneAddress: with public_ip: metadata the address the
// metadata service gives is the one in the cluster heartbeat, the page's
// ICE configuration, /api/v1/ice-servers and welcome, with the ports the
// listeners were bound to (port 0 in the config). Before Advertised the
// heartbeat carried the auto address (the loopback listeners') while TURN
// advertised the metadata one.
func TestAdvertisedOneAddress(t *testing.T) {
	const public = "203.0.113.77"
	t.Run("cluster heartbeat", func(t *testing.T) {
		key := filepath.Join(t.TempDir(), "cluster.key")
		if err := os.WriteFile(key, []byte("advertised-cluster-secret-0123456789\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		d := advertisedDaemon(t, public, fmt.Sprintf("cluster: {node: a, listen: \"127.0.0.1:0\", secret_file: %q}\n", key))
		// Status reports the node's own relay as its heartbeat carries it
		// (cluster.Config.Relay), from the start.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var self bool
		for _, n := range d.cluster.node.Status(ctx).Nodes {
			if n.Self {
				self = true
				if n.Relay.Addr.String() != public {
					t.Errorf("cluster heartbeat relay %s, want %s", n.Relay.Addr, public)
				}
			}
		}
		if !self {
			t.Error("the node's status lacks itself")
		}
	})
	t.Run("page, API, welcome", func(t *testing.T) {
		d := advertisedDaemon(t, public, "")
		// The URLs every client is given: the advertised address, the
		// bound ports.
		var want []string
		for _, a := range d.TURN().Addrs() {
			_, port, _ := net.SplitHostPort(a.String())
			hp := net.JoinHostPort(public, port)
			if strings.HasPrefix(a.Network(), "udp") {
				want = append(want, "stun:"+hp, "turn:"+hp+"?transport=udp")
			} else {
				want = append(want, "turn:"+hp+"?transport=tcp")
			}
		}
		slices.Sort(want)

		base := "http://" + d.HTTPAddr().String()
		page := get(t, base+"/r/advertised-room")
		m := regexp.MustCompile(`(?s)<script id="ice-config" type="application/json">(.*?)</script>`).FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no ice-config in the page:\n%s", page)
		}
		checkURLs(t, "page", []byte(m[1]), want)
		checkURLs(t, "/api/v1/ice-servers", []byte(get(t, base+"/api/v1/ice-servers")), want)

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ws, err := sigclient.Dial(ctx, "ws://"+d.HTTPAddr().String()+"/ws", sigclient.DialOptions{Origin: base})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		welcome, err := ws.Join(ctx, wire.Join{Room: "advertised-room", Name: "alice"})
		if err != nil {
			t.Fatalf("no welcome: %v", err)
		}
		msg, _ := wire.Marshal(welcome)
		checkURLs(t, "welcome", msg, want)
	})
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url) //nolint:noctx
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// checkURLs: body (JSON with iceServers) carries exactly the URLs want.
func checkURLs(t *testing.T, what string, body []byte, want []string) {
	t.Helper()
	var v struct {
		ICEServers []rtc.ICEServer `json:"iceServers"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, body)
	}
	var got []string
	for _, s := range v.ICEServers {
		got = append(got, s.URLs...)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s: got URLs %q, want %q", what, got, want)
	}
}
