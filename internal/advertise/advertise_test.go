package advertise

import (
	"net/netip"
	"slices"
	"testing"
)

// TestNew: stun: per UDP port, turn: over UDP then TCP, turns: at the
// public host last, each URL once; port-0 endpoints left out; an
// IPv4-mapped address advertised as IPv4.
func TestNew(t *testing.T) {
	ip := netip.MustParseAddr("198.51.100.4")
	tests := []struct {
		name       string
		ip         netip.Addr
		host       string
		eps        []Endpoint
		stun, turn []string
		endpoints  int
	}{
		{"order and host", ip, "call.example.test",
			[]Endpoint{{"tls", 443}, {"tcp", 3478}, {"udp", 3478}},
			[]string{"stun:198.51.100.4:3478"},
			[]string{"turn:198.51.100.4:3478?transport=udp", "turn:198.51.100.4:3478?transport=tcp", "turns:call.example.test:443?transport=tcp"}, 3},
		{"no host: the address", ip, "", []Endpoint{{"tls", 5349}},
			nil, []string{"turns:198.51.100.4:5349?transport=tcp"}, 1},
		{"port 0 left out, duplicates once", netip.MustParseAddr("::ffff:198.51.100.4"), "",
			[]Endpoint{{"udp", 0}, {"udp", 3478}, {"udp", 3478}},
			[]string{"stun:198.51.100.4:3478"}, []string{"turn:198.51.100.4:3478?transport=udp"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New(tt.ip, tt.host, tt.eps)
			if !slices.Equal(a.STUNURLs, tt.stun) || !slices.Equal(a.TURNURLs, tt.turn) || len(a.Endpoints) != tt.endpoints {
				t.Errorf("got stun %q turn %q, %d endpoints; want %q %q, %d", a.STUNURLs, a.TURNURLs, len(a.Endpoints), tt.stun, tt.turn, tt.endpoints)
			}
		})
	}
}

// TestICEServers: the stun: entry carries nothing; the TURN entry the
// credential given; STUNServers is empty, not nil, without UDP (the page
// embeds it as JSON: [] not null).
func TestICEServers(t *testing.T) {
	a := New(netip.MustParseAddr("198.51.100.4"), "", []Endpoint{{"udp", 3478}, {"tcp", 3478}})
	s := a.ICEServers("1700000000:u", "pw")
	if len(s) != 2 || s[0].Username != "" || s[1].Username != "1700000000:u" || s[1].Credential != "pw" || len(s[1].URLs) != 2 {
		t.Errorf("got %+v", s)
	}
	if at, ok := a.First("tcp"); !ok || at.String() != "198.51.100.4:3478" {
		t.Errorf("First(tcp) = %s %v", at, ok)
	}
	noUDP := New(netip.MustParseAddr("198.51.100.4"), "", []Endpoint{{"tcp", 3478}})
	if got := noUDP.STUNServers(); got == nil || len(got) != 0 {
		t.Errorf("STUNServers without UDP: got %#v, want empty", got)
	}
	if _, ok := noUDP.First("udp"); ok {
		t.Error("First(udp) without a UDP endpoint said ok")
	}
}
