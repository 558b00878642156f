package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	cfg, err := Load("")
	if err != nil {
		t.Fatalf("Load(\"\"): %v", err)
	}
	p := &cfg.Parsed
	if cfg.HTTP.Listen != DefaultHTTPListen || cfg.TURN.Realm != "icebox" || cfg.TURN.CredentialTTL != time.Hour {
		t.Errorf("defaults: got listen %q realm %q ttl %s", cfg.HTTP.Listen, cfg.TURN.Realm, cfg.TURN.CredentialTTL)
	}
	if len(p.TURNListen) != 2 || p.TURNListen[0] != (Listener{Network: "udp", Addr: "0.0.0.0:3478"}) || p.TURNListen[1] != (Listener{Network: "tcp", Addr: "0.0.0.0:3478"}) {
		t.Errorf("turn listeners: got %v", p.TURNListen)
	}
	if p.RelayMin != 49152 || p.RelayMax != 65535 {
		t.Errorf("relay ports: got %d-%d", p.RelayMin, p.RelayMax)
	}
	if len(p.DenyPeers) != len(RecommendedDenyPeers) {
		t.Errorf("deny peers: got %d prefixes, want the %d recommended", len(p.DenyPeers), len(RecommendedDenyPeers))
	}
	if p.MetricsAddr != DefaultMetricsListen || cfg.Signaling.MaxPeersPerRoom != 8 || cfg.StateDir != DefaultStateDir {
		t.Errorf("defaults: metrics %q peers %d state %q", p.MetricsAddr, cfg.Signaling.MaxPeersPerRoom, cfg.StateDir)
	}
	if cfg.TURN.Credentials != "on-page" || cfg.TURN.CredentialsPerMinute != 30 || cfg.TURN.CredentialsBurst != 60 {
		t.Errorf("defaults: credentials %q per minute %d burst %d, want on-page 30 60",
			cfg.TURN.Credentials, cfg.TURN.CredentialsPerMinute, cfg.TURN.CredentialsBurst)
	}
}

// TestIPv6AggregateKeys: ipv6_aggregate_prefix defaults to 48 (or the
// client prefix when that is shorter) and ipv6_aggregate_factor to 8, and
// ClientKeyer carries them.
func TestIPv6AggregateKeys(t *testing.T) {
	tests := []struct {
		yml                 string
		client, agg, factor int
	}{
		{"", 64, 48, 8},
		{"ipv6_aggregate_prefix: 56\nipv6_aggregate_factor: 4", 64, 56, 4},
		{"ipv6_client_prefix: 40", 40, 40, 8},
		{"ipv6_client_prefix: 56\nipv6_aggregate_prefix: 56", 56, 56, 8},
	}
	for _, tt := range tests {
		cfg, err := FromBytes("icebox.yaml", []byte(tt.yml))
		if err != nil {
			t.Fatalf("%q: %v", tt.yml, err)
		}
		k := cfg.ClientKeyer()
		if k.IPv6Prefix != tt.client || k.IPv6AggregatePrefix != tt.agg || k.IPv6AggregateFactor != tt.factor {
			t.Errorf("%q: got %+v, want /%d, /%d, ×%d", tt.yml, k, tt.client, tt.agg, tt.factor)
		}
	}
}

// TestTCPConnectionCapKeys: turn.max_tcp_connections_per_ip defaults to
// 64 and turn.max_tcp_connections to 0 (automatic); -1 turns either off
// and is kept as -1.
func TestTCPConnectionCapKeys(t *testing.T) {
	tests := []struct {
		yml          string
		perIP, total int
	}{
		{"", DefaultMaxTCPConnectionsPerIP, 0},
		{"turn: {max_tcp_connections_per_ip: 4, max_tcp_connections: 100}", 4, 100},
		{"turn: {max_tcp_connections_per_ip: -1, max_tcp_connections: -1}", -1, -1},
		{"turn: {max_tcp_connections: 0}", DefaultMaxTCPConnectionsPerIP, 0},
	}
	for _, tt := range tests {
		cfg, err := FromBytes("icebox.yaml", []byte(tt.yml))
		if err != nil {
			t.Fatalf("%q: %v", tt.yml, err)
		}
		if cfg.TURN.MaxTCPConnectionsPerIP != tt.perIP || cfg.TURN.MaxTCPConnections != tt.total {
			t.Errorf("%q: got per ip %d, total %d; want %d, %d", tt.yml,
				cfg.TURN.MaxTCPConnectionsPerIP, cfg.TURN.MaxTCPConnections, tt.perIP, tt.total)
		}
	}
}

func TestFullFile(t *testing.T) {
	yml := `
public_ip: 203.0.113.10
http:
  listen: "0.0.0.0:8443"
  allowed_origins: ["https://app.example.com"]
turn:
  realm: example.org
  listen: ["udp://10.0.0.5:3478"]
  relay_ports: "50000-50100"
  secrets: ["0123456789abcdef0123", "fedcba9876543210fedc"]
  credential_ttl: 2h
  users: {alice: "pw"}
  deny_peers: [recommended, 198.51.100.7]
  allow_peers: [10.0.0.0/8]
  max_allocations_per_user: 5
  max_allocations: -1
  credentials: on-join
  credentials_per_minute: -1
  credentials_burst: 5
signaling:
  max_peers_per_room: 4
  rooms: {team: {password: "s3cret"}}
metrics:
  listen: ""
state_dir: /tmp/icebox
`
	cfg, err := FromBytes("icebox.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	p := &cfg.Parsed
	if p.PublicIP.String() != "203.0.113.10" || p.RelayMin != 50000 || p.RelayMax != 50100 {
		t.Errorf("got public ip %s relay %d-%d", p.PublicIP, p.RelayMin, p.RelayMax)
	}
	if cfg.TURN.CredentialTTL != 2*time.Hour || cfg.TURN.MaxAllocations != -1 || cfg.Signaling.Rooms["team"].Password != "s3cret" {
		t.Errorf("got ttl %s max %d rooms %v", cfg.TURN.CredentialTTL, cfg.TURN.MaxAllocations, cfg.Signaling.Rooms)
	}
	if len(p.DenyPeers) != len(RecommendedDenyPeers)+1 || p.DenyPeers[len(p.DenyPeers)-1].String() != "198.51.100.7/32" {
		t.Errorf("deny peers: got %v", p.DenyPeers)
	}
	if p.MetricsAddr != "" {
		t.Errorf(`metrics.listen "" should turn metrics off, got %q`, p.MetricsAddr)
	}
	if cfg.TURN.Credentials != "on-join" || cfg.TURN.CredentialsPerMinute != -1 || cfg.TURN.CredentialsBurst != 5 {
		t.Errorf("got credentials %q per minute %d burst %d, want on-join -1 5",
			cfg.TURN.Credentials, cfg.TURN.CredentialsPerMinute, cfg.TURN.CredentialsBurst)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name, yml, key, reason string
		line                   int
	}{
		{"unknown top-level key", "pubic_ip: 1.2.3.4", "pubic_ip", "unknown key", 1},
		{"unknown nested key", "http:\n  lisen: x", "http.lisen", "unknown key", 2},
		{"unknown key in a room", "signaling:\n  rooms:\n    a:\n      pasword: x", "signaling.rooms.a.pasword", "unknown key", 4},
		{"bad CIDR in allow_peers", "turn:\n  allow_peers: [10.0.0.0/33]", "turn.allow_peers", "not a CIDR", 2},
		{"bad CIDR in deny_peers", "turn:\n  deny_peers: [banana]", "turn.deny_peers", "not a CIDR", 2},
		{"reversed port range", "turn:\n  relay_ports: 60000-50000", "turn.relay_ports", "first port is above", 2},
		{"port range not numbers", "turn:\n  relay_ports: a-b", "turn.relay_ports", "numbers", 2},
		{"privileged relay ports", "turn:\n  relay_ports: 80-90", "turn.relay_ports", "below 1024", 2},
		{"bitrate unknown unit", "turn:\n  max_bitrate_per_allocation: 5 MB/s", "turn.max_bitrate_per_allocation", "unknown unit", 2},
		{"bitrate not a number", "turn:\n  max_bitrate_per_allocation: fast", "turn.max_bitrate_per_allocation", "unknown unit", 2},
		{"bitrate too low", "turn:\n  max_bitrate_per_allocation: 1kbps", "turn.max_bitrate_per_allocation", "outside", 2},
		{"listen URL without scheme", "turn:\n  listen: [\"0.0.0.0:3478\"]", "turn.listen[0]", "not a listener URL", 2},
		{"listen URL unknown scheme", "turn:\n  listen: [\"sctp://0.0.0.0:3478\"]", "turn.listen[0]", "unknown scheme", 2},
		{"listen URL bad port", "turn:\n  listen: [\"udp://0.0.0.0:99999\"]", "turn.listen[0]", "port", 2},
		{"empty listen list", "turn:\n  listen: []", "turn.listen", "at least one", 2},
		{"bad public ip", "public_ip: example.com", "public_ip", "not an IP", 1},
		{"bad http listen", "http:\n  listen: 8080", "http.listen", "host:port", 2},
		{"short secret", "turn:\n  secrets: [short]", "turn.secrets[0]", "at least 16", 2},
		{"bad ttl", "turn:\n  credential_ttl: 5000h", "turn.credential_ttl", "outside", 2},
		{"ttl wrong type", "turn:\n  credential_ttl: soon", "turn.credential_ttl", "wrong type", 2},
		{"int wrong type", "signaling:\n  max_peers_per_room: many", "signaling.max_peers_per_room", "wrong type", 2},
		{"room size too small", "signaling:\n  max_peers_per_room: 1", "signaling.max_peers_per_room", "outside", 2},
		{"bad origin", "http:\n  allowed_origins: [example.com]", "http.allowed_origins[0]", "not an origin", 2},
		{"user with colon", "turn:\n  users: {\"a:b\": pw}", "turn.users.a:b", "without ':'", 2},
		{"cert without key", "http:\n  tls: {cert_file: /x}", "http.tls", "go together", 2},
		{"tls listener without certificate", "turn:\n  listen: [\"tls://0.0.0.0:5349\"]", "turn.listen[0]", "need a certificate", 2},
		{"bad acme domain", "http:\n  tls: {acme_domains: [\"bad domain\"]}", "http.tls.acme_domains[0]", "not a DNS name", 2},
		{"files and acme", "http:\n  tls: {cert_file: /a, key_file: /b, acme_domains: [x.example]}", "http.tls", "either", 2},
		{"tcp connections per ip below -1", "turn:\n  max_tcp_connections_per_ip: -2", "turn.max_tcp_connections_per_ip", "-1 for no cap", 2},
		{"tcp connections below -1", "turn:\n  max_tcp_connections: -5", "turn.max_tcp_connections", "0 for automatic", 2},
		{"dtls listener", "turn:\n  listen: [\"dtls://0.0.0.0:5349\"]", "turn.listen[0]", "not supported", 2},
		{"unknown credentials mode", "turn:\n  credentials: on-demand", "turn.credentials", "not on-page or on-join", 2},
		{"negative credentials rate", "turn:\n  credentials_per_minute: -2", "turn.credentials_per_minute", "-1 for no limit", 2},
		{"negative credentials burst", "turn:\n  credentials_burst: -1", "turn.credentials_burst", "outside 1 to", 2},
		{"huge credentials burst", "turn:\n  credentials_burst: 1000000", "turn.credentials_burst", "outside 1 to", 2},
		{"aggregate prefix longer than the client prefix", "ipv6_aggregate_prefix: 72", "ipv6_aggregate_prefix", "from 1 to ipv6_client_prefix (64)", 1},
		{"aggregate prefix longer than a short client prefix", "ipv6_client_prefix: 40\nipv6_aggregate_prefix: 48", "ipv6_aggregate_prefix", "from 1 to ipv6_client_prefix (40)", 2},
		{"negative aggregate prefix", "ipv6_aggregate_prefix: -8", "ipv6_aggregate_prefix", "not a prefix length", 1},
		{"aggregate factor below 1", "ipv6_aggregate_factor: -1", "ipv6_aggregate_factor", "not from 1 to 1024", 1},
		{"aggregate factor too large", "ipv6_aggregate_factor: 5000", "ipv6_aggregate_factor", "not from 1 to 1024", 1},
		{"not a mapping", "- a\n- b", "", "mapping", 1},
		{"not YAML", "a: [", "", "not valid YAML", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromBytes("icebox.yaml", []byte(tt.yml))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *config.Error", err)
			}
			if ce.Key != tt.key || !strings.Contains(ce.Reason, tt.reason) {
				t.Errorf("got key %q reason %q, want key %q reason containing %q", ce.Key, ce.Reason, tt.key, tt.reason)
			}
			if tt.line != 0 && ce.Line != tt.line {
				t.Errorf("got line %d, want %d (%v)", ce.Line, tt.line, err)
			}
			if !strings.HasPrefix(err.Error(), "icebox.yaml") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing file: got %v", err)
	}
	path := filepath.Join(dir, "icebox.yaml")
	if err := os.WriteFile(path, []byte("# only a comment\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Errorf("comment-only file: %v", err)
	}
	if err := os.WriteFile(path, make([]byte, MaxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("huge file: got %v", err)
	}
}

func FuzzFromBytes(f *testing.F) {
	f.Add([]byte("turn:\n  relay_ports: 50000-50100\n"))
	f.Add([]byte("http: {listen: \"[::1]:80\"}\nsignaling: {rooms: {a: {password: b}}}"))
	f.Add([]byte("turn:\n  allow_peers: [::1, 10.0.0.0/8]\n  listen: [\"udp://[::]:3478\"]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := FromBytes("fuzz.yaml", data)
		if err == nil && (cfg == nil || len(cfg.Parsed.TURNListen) == 0) {
			t.Fatalf("accepted config without listeners: %q", data)
		}
	})
}

// TestExampleFile checks the example installed as /etc/icebox/icebox.yaml
// loads, and still loads with every commented key enabled.
func TestExampleFile(t *testing.T) {
	data, err := os.ReadFile("../docs/icebox.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FromBytes("icebox.example.yaml", data); err != nil {
		t.Fatalf("example as shipped: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimLeft(l, " ")
		indent := l[:len(l)-len(trimmed)]
		// "# text" is prose; "#key: v" and "#  nested: v" are YAML.
		prose := strings.HasPrefix(trimmed, "# ") && !strings.HasPrefix(trimmed, "#  ")
		if strings.HasPrefix(trimmed, "#") && !prose && len(trimmed) > 1 {
			l = indent + trimmed[1:]
		}
		lines = append(lines, l)
	}
	enabled := strings.Join(lines, "\n")
	cfg, err := FromBytes("enabled.yaml", []byte(enabled))
	if err != nil {
		t.Fatalf("example with every key enabled: %v\n%s", err, enabled)
	}
	if cfg.PublicIP != "auto" || cfg.Signaling.Rooms["team"].Password != "change me" {
		t.Errorf("enabled example did not set the keys: %+v", cfg)
	}
}

func TestParseBitrate(t *testing.T) {
	good := map[string]int64{
		"": 0, "0": 0, "0Mbps": 0, "2500000": 2_500_000, "2.5Mbps": 2_500_000, "800 kbps": 800_000,
		"800KBPS": 800_000, "1Gbps": 1_000_000_000, "64000bps": 64_000, " 10Mbps ": 10_000_000,
	}
	for in, want := range good {
		if got, err := ParseBitrate(in); err != nil || got != want {
			t.Errorf("ParseBitrate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"Mbps", "1.2.3Mbps", "-5Mbps", "5MB/s", "7999", "101Gbps", "NaN", "1e400"} {
		if got, err := ParseBitrate(in); err == nil {
			t.Errorf("ParseBitrate(%q) = %d, want an error", in, got)
		}
	}
	cfg, err := FromBytes("icebox.yaml", []byte("turn:\n  max_bitrate_per_allocation: 2.5Mbps\n"))
	if err != nil || cfg.Parsed.MaxBitrate != 2_500_000 {
		t.Errorf("max_bitrate_per_allocation: 2.5Mbps gave %v", err)
	}
}
