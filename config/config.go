// Package config holds icebox's YAML schema, its defaults and its
// validation. It is the only package that knows YAML.
//
// Every key is optional; an absent file gives a working local setup (the
// call page on http://localhost:8080, STUN/TURN on port 3478). Unknown keys
// are an error naming the key, so a typo never silently falls back to a
// default.
package config

import (
	"net/netip"
	"time"

	"github.com/icebox-project/icebox/internal/clientaddr"
)

// DefaultPath is where the systemd unit and the install target put the
// configuration file.
const DefaultPath = "/etc/icebox/icebox.yaml"

// Config is the whole icebox configuration file.
type Config struct {
	// PublicHost is the DNS name browsers reach icebox at, used in turns:
	// URLs (it must match the certificate). Default: the first
	// http.tls.acme_domains entry, else the certificate's first DNS name,
	// else public_ip.
	PublicHost string `yaml:"public_host"`

	// PublicIP is the address peers reach the relay at: it is advertised in
	// XOR-RELAYED-ADDRESS and in the turn:/stun: URLs handed to browsers.
	// An IPv4 address, or:
	//   - "auto" (the default, also ""): the TURN listeners' address when
	//     every one of them binds the same IPv4 address (so a loopback-only
	//     set-up just works), else the first non-loopback IPv4 address of
	//     the host's interfaces, else 127.0.0.1;
	//   - "metadata": the public IPv4 address the cloud's instance metadata
	//     service gives (AWS, GCP, Azure, DigitalOcean, Hetzner, Oracle),
	//     asked at start-up for at most 300 ms, else "auto". Never the
	//     default: only this sends anything to 169.254.169.254.
	// Parsed.PublicIPMode says which; the daemon resolves the address and
	// logs where it came from.
	PublicIP string `yaml:"public_ip"`

	HTTP      HTTP      `yaml:"http"`
	TURN      TURN      `yaml:"turn"`
	Signaling Signaling `yaml:"signaling"`
	Metrics   Metrics   `yaml:"metrics"`
	Log       Log       `yaml:"log"`
	// Cluster makes this icebox a node of several (cluster.go). Absent:
	// a single node.
	Cluster *Cluster `yaml:"cluster"`
	// SFU is the embedded selective forwarding unit (sfu.go). Absent: no
	// SFU; every room is a mesh.
	SFU *SFU `yaml:"sfu"`
	// Branding is the operator's name and logo on the pages (branding.go).
	// Absent: icebox's own.
	Branding Branding `yaml:"branding"`

	// ShutdownGrace is how long a stopping icebox (SIGTERM) lets live
	// allocations end before closing them; new allocations are refused
	// meanwhile. Default 10s; at most 5m.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`

	// IPv6ClientPrefix is the prefix length IPv6 clients are counted by in
	// every per-address limit (TURN allocations and TCP connections per
	// address, WebSockets per address, credential minting, password
	// guesses): one subscriber normally holds a whole /64 (RFC 6177), so
	// counting single IPv6 addresses would let it walk around each limit.
	// IPv4 clients are counted per address. Default 64; 1 to 128.
	IPv6ClientPrefix int `yaml:"ipv6_client_prefix"`
	// IPv6AggregatePrefix is the prefix length of the second tier every
	// per-address limit also counts an IPv6 client by (TURN allocations
	// and TCP connections, WebSockets, credential minting), with a cap of
	// ipv6_aggregate_factor times the per-address one: a subscriber is
	// often given a /56 or a /48 (RFC 6177), 256 or 65536 /64s, and would
	// otherwise get that many times each limit. A request is refused when
	// either tier is full. Default 48; from 1 to ipv6_client_prefix, which
	// turns the second tier off.
	IPv6AggregatePrefix int `yaml:"ipv6_aggregate_prefix"`
	// IPv6AggregateFactor is the second tier's cap as a multiple of each
	// per-address cap (for credential minting, of the rate and the
	// burst). Default 8: a /48 is a site, and many users behind one is
	// rarer than behind one NATed IPv4 address (which share a single
	// cap), but a site with several subscribers exists; a client with a
	// /56 gets 8×, not 256×, a limit. 1 to 1024.
	IPv6AggregateFactor int `yaml:"ipv6_aggregate_factor"`

	// Parsed holds the values of the keys above turned into the types the
	// rest of icebox uses. Load and FromBytes fill it when they validate
	// the file; it is not a key of the file.
	Parsed Parsed `yaml:"-"`

	// StateDir holds state icebox generates once and keeps, such as the
	// TURN REST secret when none is configured. Default /var/lib/icebox.
	StateDir string `yaml:"state_dir"`
}

// HTTP configures the web server: the call page, /ws and the API.
type HTTP struct {
	// Listen is host:port for the web server. Default "127.0.0.1:8080".
	Listen string `yaml:"listen"`
	// TLS configures HTTPS. Zero value: plain HTTP.
	TLS TLS `yaml:"tls"`
	// AllowedOrigins lists extra Origin values ("https://app.example.com")
	// allowed to open /ws. The page's own host is always allowed.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// TrustedProxies are reverse proxies (CIDRs) whose X-Forwarded-For
	// header names the client address, for per-address limits. Empty: the
	// TCP peer is the client.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// APIKeys guard GET /api/v1/ice-servers (Authorization: Bearer <key>,
	// at least 16 characters each). Empty: the API is open, like the page.
	APIKeys []string `yaml:"api_keys"`
}

// Log configures logging (log/slog).
type Log struct {
	// Format is "text" (key=value) or "json". Default "text".
	Format string `yaml:"format"`
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
}

// TLS configures the certificate for HTTPS and for TURN tls:// listeners:
// either files (re-read when they change and on SIGHUP) or automatic ACME
// certificates. Zero value: plain HTTP and no TURN over TLS.
type TLS struct {
	// CertFile and KeyFile are PEM files (full chain, private key).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ACMEDomains get certificates through ACME (RFC 8555) with
	// TLS-ALPN-01 on http.listen (normally ":443") and HTTP-01 on
	// RedirectListen; cached in state_dir/acme.
	ACMEDomains []string `yaml:"acme_domains"`
	// ACMEEmail is the contact address given to the CA. Optional.
	ACMEEmail string `yaml:"acme_email"`
	// ACMEDirectory is the CA's directory URL. Default: Let's Encrypt.
	ACMEDirectory string `yaml:"acme_directory"`
	// RedirectListen is host:port of a plain HTTP listener that answers
	// ACME HTTP-01 challenges and redirects everything else to https.
	// Default ":80" with ACME, off otherwise; "" turns it off.
	RedirectListen *string `yaml:"redirect_listen"`
}

// TURN configures the STUN/TURN server (RFC 8489, RFC 8656).
type TURN struct {
	// Realm is the REALM attribute of the long-term credential mechanism
	// (RFC 8489 §9.2). Default "icebox".
	Realm string `yaml:"realm"`
	// Listen lists listener URLs: "udp://host:port", "tcp://host:port" or
	// "tls://host:port" (needs http.tls). A tls:// entry (with HTTPS) or a
	// tcp:// entry (with plain HTTP) naming http.listen's address shares
	// that listener (listeners.go). Default ["udp://0.0.0.0:3478",
	// "tcp://0.0.0.0:3478"].
	Listen []string `yaml:"listen"`
	// RelayPorts is the inclusive range "min-max" relayed transport
	// addresses are taken from. Default "49152-65535".
	RelayPorts string `yaml:"relay_ports"`
	// Secrets are TURN REST shared secrets
	// (draft-uberti-behave-turn-rest-00 §2.2): the first signs new
	// credentials, all of them verify. Empty: one 32-byte secret is
	// generated once and kept in StateDir (mode 0600).
	Secrets []string `yaml:"secrets"`
	// CredentialTTL is how long a minted credential may open new
	// allocations. Default 1h; at most 30 days.
	CredentialTTL time.Duration `yaml:"credential_ttl"`
	// Users are static long-term credentials, user name to password.
	Users map[string]string `yaml:"users"`
	// Credentials says where browsers get TURN credentials: "on-page"
	// (default) embeds them in the call page of every room without a
	// password; "on-join" never puts them in a page: a browser gets them
	// in welcome after a successful join, and GET /api/v1/ice-servers
	// refuses (403) unless http.api_keys is set. A room with a password
	// (signaling.rooms.<name>.password or
	// signaling.default_room_password) behaves as on-join in either mode.
	// The page keeps its STUN URLs.
	Credentials string `yaml:"credentials"`
	// CredentialsPerMinute is how many TURN credentials one client
	// address (an IPv4 address, or an IPv6 prefix of ipv6_client_prefix
	// bits) is handed per minute, counted together over call page loads,
	// /ws welcomes and ice-servers refreshes, and the API; past it the
	// page and the API answer 429 with Retry-After and a join gets
	// "rate-limited". Default 30; 0 is the default, -1 means no limit.
	CredentialsPerMinute int `yaml:"credentials_per_minute"`
	// CredentialsBurst is how many credentials a client address may take
	// at once before CredentialsPerMinute applies. Default 60 (a full
	// room behind one address rejoining, with page reloads); 0 is the
	// default; at most 100000.
	CredentialsBurst int `yaml:"credentials_burst"`
	// DenyPeers lists peer CIDRs (or single addresses) the relay refuses
	// permissions to; "recommended" stands for RecommendedDenyPeers.
	// Default ["recommended"].
	DenyPeers []string `yaml:"deny_peers"`
	// AllowPeers lists peer CIDRs that win over DenyPeers.
	AllowPeers []string `yaml:"allow_peers"`
	// MaxAllocationsPerUser caps live allocations per user: the id part
	// of a REST username, or the static user name. Default 24: one page
	// holds one credential for all its peer connections, and in a full
	// room of 8 each of its 7 connections may allocate over UDP, TCP and
	// TLS. 0 is the default, -1 means no cap.
	MaxAllocationsPerUser int `yaml:"max_allocations_per_user"`
	// MaxAllocations caps live allocations in total. Default 10000; -1
	// means no cap.
	MaxAllocations int `yaml:"max_allocations"`
	// MaxAllocationsPerIP caps live allocations per client address.
	// Default 100; -1 means no cap.
	MaxAllocationsPerIP int `yaml:"max_allocations_per_ip"`
	// MaxTCPConnectionsPerIP caps open TURN connections over TCP and TLS
	// per client address (the IPv4 address, or the IPv6 prefix of
	// ipv6_client_prefix bits); a connection over it is closed as soon as
	// it is accepted. A browser holds one per TURN TCP or TLS URL and peer
	// connection while it gathers candidates (up to 14 in a full mesh room
	// of 8), so a few browsers behind one NAT fit the default. Default 64;
	// -1 means no cap. A reload applies to connections accepted afterwards.
	MaxTCPConnectionsPerIP int `yaml:"max_tcp_connections_per_ip"`
	// MaxTCPConnections caps open TURN connections over TCP and TLS in
	// total, to keep icebox below its file descriptor limit. Default 0:
	// automatic, a quarter of the soft RLIMIT_NOFILE (16384 under the
	// systemd unit's LimitNOFILE=65536), leaving the rest for relayed
	// sockets, WebSockets and files; -1 means no cap. A reload applies to
	// connections accepted afterwards.
	MaxTCPConnections int `yaml:"max_tcp_connections"`
	// MaxBitratePerAllocation caps what one allocation relays, each
	// direction on its own, as bits per second of UDP payload: a number,
	// or a number with kbps, Mbps or Gbps ("2.5Mbps"). Datagrams over the
	// cap are dropped and counted; a burst of up to 500 ms at the cap
	// passes. Default "" (or "0"): no cap; otherwise 8kbps to 100Gbps. A
	// reload applies a new cap to allocations made afterwards.
	MaxBitratePerAllocation string `yaml:"max_bitrate_per_allocation"`
	// ShareHTTPListen puts TURN on http.listen's socket, over TLS with
	// HTTPS or over TCP with plain HTTP, each connection told apart by
	// ALPN or its first bytes, as if Listen named http.listen's address.
	// Absent: on when http.listen is port 443 with a certificate (TURN
	// over TLS on 443 for clients whose network lets only TCP 443 out,
	// turns:<public_host>:443?transport=tcp, listed last); true: whatever
	// the port, port 0 too; false: off. A tls:// or tcp:// entry of Listen
	// naming http.listen's address shares it whatever this says.
	ShareHTTPListen *bool `yaml:"share_http_listen"`
	// UDPSockets is how many SO_REUSEPORT sockets serve each udp://
	// listener. On Linux each socket, and the relayed addresses of the
	// allocations made through it, belong to one relay loop, and there are
	// as many loops as sockets. Default 0: one per core Go may use
	// (GOMAXPROCS at start-up, within a container's CPU limit). 1 runs one
	// loop for every allocation, which costs less CPU per packet but uses
	// one core for relaying (docs/BENCHMARKS.md).
	UDPSockets int `yaml:"udp_sockets"`
}

// Signaling configures the WebSocket signaling server.
type Signaling struct {
	// MaxPeersPerRoom caps the peers in one room. Default 8.
	MaxPeersPerRoom int `yaml:"max_peers_per_room"`
	// MaxRooms caps the rooms open at once. Default 10000; -1: no cap.
	MaxRooms int `yaml:"max_rooms"`
	// MaxConnectionsPerIP caps open WebSockets per client address; a
	// peer suspended after a drop counts as its connection until it
	// resumes or its resume window ends. Default 50; -1: no cap.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// DefaultRoomPassword, when set, is required by every room that has
	// no password of its own in Rooms.
	DefaultRoomPassword string `yaml:"default_room_password"`
	// Rooms holds per-room settings by room name.
	Rooms map[string]Room `yaml:"rooms"`
	// DefaultMedia is the media mode of rooms without their own: "auto"
	// (the default: a mesh up to mesh_max peers, the SFU above), "mesh"
	// or "sfu". Without an sfu: section every room is a mesh.
	DefaultMedia string `yaml:"default_media"`
	// MeshMax is the most peers an auto room holds as a mesh, 2 to
	// max_peers_per_room. Default 4, or max_peers_per_room when that is
	// lower.
	MeshMax int `yaml:"mesh_max"`
	// MeshReturnAfter is how long an auto room on the SFU must have held
	// two people or fewer before it goes back to a mesh. Default 30s;
	// 1s to 1h.
	MeshReturnAfter time.Duration `yaml:"mesh_return_after"`
}

// Room holds the settings of one named room.
type Room struct {
	// Password, when set, must be given in join (error "bad-password").
	Password string `yaml:"password"`
	// Media is the room's media mode: auto, mesh or sfu. Default
	// signaling.default_media.
	Media string `yaml:"media"`
}

// Metrics configures the Prometheus listener.
type Metrics struct {
	// Listen is host:port for /metrics and /healthz. Default
	// "127.0.0.1:9464"; "" turns the listener off.
	Listen *string `yaml:"listen"`
}

// Parsed holds the values of Config turned into the types the rest of
// icebox uses: Config.Parsed, filled when a file is loaded.
type Parsed struct {
	// SFU is sfu: checked; nil without one.
	SFU *ParsedSFU
	// PublicIP is public_ip when it is an address; invalid for "auto"
	// and "metadata" (PublicIPMode).
	PublicIP netip.Addr
	// PublicIPMode is PublicIPAddress, PublicIPAuto or PublicIPMetadata.
	PublicIPMode string
	// TURNListen is turn.listen parsed, with the entry that shares
	// http.listen marked, or the one turn.share_http_listen adds.
	TURNListen []Listener
	RelayMin   uint16
	RelayMax   uint16
	DenyPeers  []netip.Prefix
	AllowPeers []netip.Prefix
	// MaxBitrate is turn.max_bitrate_per_allocation in bits per second; 0:
	// no cap.
	MaxBitrate  int64
	MetricsAddr string
	// TrustedProxies is http.trusted_proxies parsed.
	TrustedProxies []netip.Prefix
	// TLS is true when a certificate is configured (files or ACME).
	TLS bool
	// Cluster is the cluster section checked; nil on a single node.
	Cluster *ParsedCluster
	// Branding is branding: checked, with the logo file's content.
	Branding ParsedBranding
}

// public_ip modes (Parsed.PublicIPMode).
const (
	PublicIPAddress  = "address"
	PublicIPAuto     = "auto"
	PublicIPMetadata = "metadata"
)

// Listener is one parsed turn.listen entry.
type Listener struct {
	// Network is "udp", "tcp" or "tls".
	Network string
	// Addr is host:port as given; for a listener that shares http.listen,
	// the address the shared socket binds.
	Addr string
	// Share is true for the listener that shares http.listen's socket.
	Share bool
	// Default is true for the shared listener turn.share_http_listen
	// added (no entry of turn.listen names it).
	Default bool
}

// ClientKeyer is the clientaddr.Keyer of every per-address limit:
// ipv6_client_prefix, ipv6_aggregate_prefix and ipv6_aggregate_factor.
func (c *Config) ClientKeyer() clientaddr.Keyer {
	return clientaddr.Keyer{IPv6Prefix: c.IPv6ClientPrefix,
		IPv6AggregatePrefix: c.IPv6AggregatePrefix, IPv6AggregateFactor: c.IPv6AggregateFactor}
}
