package config

import (
	"errors"
	"strings"
	"testing"
)

const certs = "  tls: {cert_file: /c.pem, key_file: /k.pem}\n"

// TestListenerClashes: a tcp:// or tls:// entry naming http.listen's
// address shares it when that is supported (tcp:// with plain HTTP, tls://
// with HTTPS); any other port clash among listeners is refused naming both
// keys; UDP and TCP on one port do not clash.
func TestListenerClashes(t *testing.T) {
	tests := []struct {
		name string
		yml  string
		// errKeys: both keys the error must name; nil: accepted.
		errKeys []string
		// shared: the turn.listen index that shares http.listen and the
		// address its socket binds; -1: none.
		shared     int
		sharedAddr string
	}{
		{"plain http shared with tcp", "http:\n  listen: \":8443\"\nturn:\n  listen: [\"tcp://0.0.0.0:8443\"]\n",
			nil, 0, ":8443"},
		{"https shared with tls", "http:\n  listen: \":8443\"\n" + certs + "turn:\n  listen: [\"udp://0.0.0.0:3478\", \"tls://0.0.0.0:8443\"]\n",
			nil, 1, ":8443"},
		{"same host shared", "http:\n  listen: \"10.0.0.5:80\"\nturn:\n  listen: [\"tcp://10.0.0.5:80\"]\n",
			nil, 0, "10.0.0.5:80"},
		{"port 0 is a free port each", "http:\n  listen: \"127.0.0.1:0\"\n" + certs + "turn:\n  listen: [\"tls://127.0.0.1:0\"]\n",
			nil, -1, ""},
		{"every address, written differently", "http:\n  listen: \"0.0.0.0:80\"\nturn:\n  listen: [\"tcp://[::]:80\"]\n",
			nil, 0, ":80"},
		{"https with plain tcp is not supported", "http:\n  listen: \":8443\"\n" + certs + "turn:\n  listen: [\"tcp://0.0.0.0:8443\"]\n",
			[]string{"turn.listen[0]", "http.listen", "tcp://0.0.0.0:8443", ":8443"}, -1, ""},
		{"overlapping hosts do not share", "http:\n  listen: \"127.0.0.1:8443\"\nturn:\n  listen: [\"tcp://0.0.0.0:8443\"]\n",
			[]string{"turn.listen[0]", "http.listen", "TCP port 8443"}, -1, ""},
		{"two TURN listeners share", "http:\n  listen: \":80\"\nturn:\n  listen: [\"tcp://0.0.0.0:80\", \"tcp://[::]:80\"]\n",
			[]string{"turn.listen[1]", "turn.listen[0]", "http.listen"}, -1, ""},
		{"metrics on the TURN port", "metrics:\n  listen: \":3478\"\n",
			[]string{"turn.listen[1]", "metrics.listen", "TCP port 3478"}, -1, ""},
		{"metrics on the http port", "http:\n  listen: \"127.0.0.1:9000\"\nmetrics:\n  listen: \"localhost:9000\"\n",
			[]string{"metrics.listen", "http.listen"}, -1, ""},
		{"two udp listeners", "turn:\n  listen: [\"udp://0.0.0.0:3478\", \"udp://10.0.0.5:3478\"]\n",
			[]string{"turn.listen[1]", "turn.listen[0]", "UDP port 3478"}, -1, ""},
		{"tcp and tls on one port", "http:\n" + certs + "turn:\n  listen: [\"tcp://0.0.0.0:5349\", \"tls://0.0.0.0:5349\"]\n",
			[]string{"turn.listen[1]", "turn.listen[0]"}, -1, ""},
		{"redirect on a TURN port", "http:\n  listen: \":443\"\n  tls: {acme_domains: [a.example], redirect_listen: \":3478\"}\n",
			[]string{"turn.listen[1]", "http.tls.redirect_listen"}, 2, ":443"},
		{"udp and tcp on one port", "http:\n  listen: \":3478\"\nturn:\n  listen: [\"udp://0.0.0.0:3478\"]\n",
			nil, -1, ""},
		{"different hosts on one port", "turn:\n  listen: [\"tcp://10.0.0.5:3478\", \"tcp://10.0.0.6:3478\"]\n",
			nil, -1, ""},
		{"IPv4 wildcard and IPv6 address", "turn:\n  listen: [\"tcp://0.0.0.0:3478\", \"tcp://[2001:db8::1]:3478\"]\n",
			nil, -1, ""},
		{"port 0 twice", "http:\n  listen: \"127.0.0.1:0\"\nmetrics:\n  listen: \"127.0.0.1:0\"\nturn:\n  listen: [\"tcp://127.0.0.1:0\", \"tcp://0.0.0.0:0\"]\n",
			nil, -1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := FromBytes("icebox.yaml", []byte(tt.yml))
			if tt.errKeys != nil {
				var ce *Error
				if !errors.As(err, &ce) {
					t.Fatalf("got %v, want an error naming %q", err, tt.errKeys)
				}
				for _, k := range tt.errKeys {
					if !strings.Contains(err.Error(), k) {
						t.Errorf("error %q does not name %q", err, k)
					}
				}
				if ce.Line == 0 {
					t.Errorf("error %q has no line", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range cfg.Parsed.TURNListen {
				if want := i == tt.shared; l.Share != want {
					t.Errorf("turn.listen[%d] %v: Share %t, want %t", i, l, l.Share, want)
				}
				if l.Share && l.Addr != tt.sharedAddr {
					t.Errorf("shared listener binds %q, want %q", l.Addr, tt.sharedAddr)
				}
			}
		})
	}
}

// TestShareHTTPListen: HTTPS on port 443 adds TURN over TLS on it, listed
// after the entries, unless an entry already shares it or
// turn.share_http_listen is false; another port only with it true, over
// TLS with HTTPS and over TCP with plain HTTP.
func TestShareHTTPListen(t *testing.T) {
	tests := []struct {
		name string
		yml  string
		want []Listener
	}{
		{"acme on 443", "http:\n  listen: \":443\"\n  tls: {acme_domains: [a.example]}\n",
			[]Listener{{Network: "udp", Addr: "0.0.0.0:3478"}, {Network: "tcp", Addr: "0.0.0.0:3478"},
				{Network: "tls", Addr: ":443", Share: true, Default: true}}},
		{"files on 443", "http:\n  listen: \"10.0.0.5:443\"\n" + certs + "turn:\n  listen: [\"udp://10.0.0.5:3478\"]\n",
			[]Listener{{Network: "udp", Addr: "10.0.0.5:3478"}, {Network: "tls", Addr: "10.0.0.5:443", Share: true, Default: true}}},
		{"explicit entry", "http:\n  listen: \":443\"\n" + certs + "turn:\n  listen: [\"tls://0.0.0.0:443\"]\n",
			[]Listener{{Network: "tls", Addr: ":443", Share: true}}},
		{"turned off", "http:\n  listen: \":443\"\n" + certs + "turn:\n  share_http_listen: false\n  listen: [\"udp://0.0.0.0:3478\"]\n",
			[]Listener{{Network: "udp", Addr: "0.0.0.0:3478"}}},
		{"port 0 with https", "http:\n  listen: \"127.0.0.1:0\"\n" + certs + "turn:\n  share_http_listen: true\n  listen: [\"udp://127.0.0.1:0\"]\n",
			[]Listener{{Network: "udp", Addr: "127.0.0.1:0"}, {Network: "tls", Addr: "127.0.0.1:0", Share: true, Default: true}}},
		{"port 80 with plain http", "http:\n  listen: \":80\"\nturn:\n  share_http_listen: true\n  listen: [\"udp://0.0.0.0:3478\"]\n",
			[]Listener{{Network: "udp", Addr: "0.0.0.0:3478"}, {Network: "tcp", Addr: ":80", Share: true, Default: true}}},
		{"https elsewhere", "http:\n  listen: \":8443\"\n" + certs + "turn:\n  listen: [\"udp://0.0.0.0:3478\"]\n",
			[]Listener{{Network: "udp", Addr: "0.0.0.0:3478"}}},
		{"plain http on 443", "http:\n  listen: \":443\"\nturn:\n  listen: [\"udp://0.0.0.0:3478\"]\n",
			[]Listener{{Network: "udp", Addr: "0.0.0.0:3478"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := FromBytes("icebox.yaml", []byte(tt.yml))
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.Parsed.TURNListen
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("listener %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestPublicIPModes: "" and auto are auto, metadata is metadata, an
// address is kept; anything else names the choices.
func TestPublicIPModes(t *testing.T) {
	for _, tt := range []struct{ value, mode, addr string }{
		{"", PublicIPAuto, "invalid IP"},
		{"auto", PublicIPAuto, "invalid IP"},
		{"metadata", PublicIPMetadata, "invalid IP"},
		{"203.0.113.10", PublicIPAddress, "203.0.113.10"},
	} {
		cfg, err := FromBytes("icebox.yaml", []byte("public_ip: \""+tt.value+"\"\n"))
		if err != nil {
			t.Fatalf("%q: %v", tt.value, err)
		}
		if p := cfg.Parsed; p.PublicIPMode != tt.mode || p.PublicIP.String() != tt.addr {
			t.Errorf("%q: got mode %q address %s, want %q %s", tt.value, p.PublicIPMode, p.PublicIP, tt.mode, tt.addr)
		}
	}
	_, err := FromBytes("icebox.yaml", []byte("public_ip: cloud\n"))
	if err == nil || !strings.Contains(err.Error(), "auto or metadata") {
		t.Errorf("public_ip: cloud: got %v", err)
	}
}
