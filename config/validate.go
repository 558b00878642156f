package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/icebox-project/icebox/internal/clientaddr"
	"github.com/icebox-project/icebox/internal/roomname"
)

// Defaults for keys left out of the file.
const (
	DefaultHTTPListen            = "127.0.0.1:8080"
	DefaultRealm                 = "icebox"
	DefaultRelayPorts            = "49152-65535"
	DefaultCredentialTTL         = time.Hour
	DefaultMaxAllocationsPerUser = 24
	DefaultMaxAllocations        = 10000
	DefaultMaxAllocationsPerIP   = 100
	DefaultCredentials           = CredentialsOnPage
	DefaultCredentialsPerMinute  = 30
	DefaultCredentialsBurst      = 60
	// DefaultMaxTCPConnectionsPerIP is turn.max_tcp_connections_per_ip's
	// default; turn.max_tcp_connections defaults to 0, automatic.
	DefaultMaxTCPConnectionsPerIP = 64
	DefaultMaxPeersPerRoom        = 8
	DefaultMaxRooms               = 10000
	DefaultMaxConnectionsPerIP    = 50
	DefaultMetricsListen          = "127.0.0.1:9464"
	DefaultStateDir               = "/var/lib/icebox"
	DefaultShutdownGrace          = 10 * time.Second
	// MaxCredentialsBurst bounds turn.credentials_burst.
	MaxCredentialsBurst = 100_000
	// MaxShutdownGrace bounds shutdown_grace. systemd/icebox.service's
	// TimeoutStopSec (330s) must exceed it plus daemon.ShutdownTimeout
	// (5s), or systemd kills an icebox still in its grace; raise both
	// together (config/unit_test.go checks the relation).
	MaxShutdownGrace = 5 * time.Minute

	// MaxCredentialTTL bounds turn.credential_ttl: 30 days.
	MaxCredentialTTL = 30 * 24 * time.Hour
	// MinSecretLength is the shortest accepted TURN REST secret, in bytes.
	MinSecretLength = 16
)

// turn.credentials values.
const (
	// CredentialsOnPage embeds TURN credentials in the call page of rooms
	// without a password.
	CredentialsOnPage = "on-page"
	// CredentialsOnJoin hands TURN credentials out only in welcome.
	CredentialsOnJoin = "on-join"
)

// DefaultTURNListen is the default turn.listen.
var DefaultTURNListen = []string{"udp://0.0.0.0:3478", "tcp://0.0.0.0:3478"}

// RecommendedDenyPeers are the peer ranges "recommended" in turn.deny_peers
// stands for: every block of the IANA IPv4 and IPv6 Special-Purpose
// Address Registries (RFC 6890) that is not globally reachable, plus
// multicast, with the source of each. The README lists them too. IPv6
// forms that embed an IPv4 address are also judged by that address
// (turnsrv.EmbeddedIPv4), so 64:ff9b::/96, which is globally reachable,
// is judged by the IPv4 address it carries.
var RecommendedDenyPeers = []string{
	"0.0.0.0/8",          // "this network", RFC 791 §3.2
	"10.0.0.0/8",         // private use, RFC 1918
	"100.64.0.0/10",      // shared address space (CGNAT), RFC 6598
	"127.0.0.0/8",        // loopback, RFC 1122 §3.2.1.3
	"169.254.0.0/16",     // link-local (cloud metadata 169.254.169.254), RFC 3927
	"172.16.0.0/12",      // private use, RFC 1918
	"192.0.0.0/24",       // IETF protocol assignments (DS-Lite, NAT64 discovery…), RFC 6890 §2.1
	"192.0.2.0/24",       // documentation TEST-NET-1, RFC 5737
	"192.88.99.0/24",     // deprecated 6to4 relay anycast, RFC 7526
	"192.168.0.0/16",     // private use, RFC 1918
	"198.18.0.0/15",      // benchmarking, RFC 2544
	"198.51.100.0/24",    // documentation TEST-NET-2, RFC 5737
	"203.0.113.0/24",     // documentation TEST-NET-3, RFC 5737
	"224.0.0.0/4",        // multicast, RFC 5771
	"240.0.0.0/4",        // reserved, RFC 1112 §4
	"255.255.255.255/32", // limited broadcast, RFC 919 §7
	"::/128",             // unspecified, RFC 4291 §2.5.2
	"::1/128",            // loopback, RFC 4291 §2.5.3
	"::/96",              // IPv4-compatible (deprecated), RFC 4291 §2.5.5.1
	"::ffff:0:0/96",      // IPv4-mapped, RFC 4291 §2.5.5.2
	"64:ff9b:1::/48",     // local-use IPv4/IPv6 translation, RFC 8215
	"100::/64",           // discard-only, RFC 6666
	"100:0:0:1::/64",     // dummy IPv6 prefix, RFC 9780
	"2001::/23",          // IETF protocol assignments (Teredo, benchmarking, ORCHID…), RFC 2928
	"2001:db8::/32",      // documentation, RFC 3849
	"2002::/16",          // 6to4, RFC 3056
	"3fff::/20",          // documentation, RFC 9637
	"5f00::/16",          // segment routing SIDs, RFC 9602
	"fc00::/7",           // unique local, RFC 4193
	"fe80::/10",          // link-local unicast, RFC 4291 §2.5.6
	"fec0::/10",          // site-local (deprecated), RFC 3879
	"ff00::/8",           // multicast, RFC 4291 §2.7
}

func (c *Config) applyDefaults() {
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = DefaultHTTPListen
	}
	if c.TURN.Realm == "" {
		c.TURN.Realm = DefaultRealm
	}
	if c.TURN.Listen == nil {
		c.TURN.Listen = append([]string(nil), DefaultTURNListen...)
	}
	if c.TURN.RelayPorts == "" {
		c.TURN.RelayPorts = DefaultRelayPorts
	}
	if c.TURN.CredentialTTL == 0 {
		c.TURN.CredentialTTL = DefaultCredentialTTL
	}
	if c.TURN.DenyPeers == nil {
		c.TURN.DenyPeers = []string{"recommended"}
	}
	if c.TURN.MaxAllocationsPerUser == 0 {
		c.TURN.MaxAllocationsPerUser = DefaultMaxAllocationsPerUser
	}
	if c.TURN.MaxAllocations == 0 {
		c.TURN.MaxAllocations = DefaultMaxAllocations
	}
	if c.TURN.MaxAllocationsPerIP == 0 {
		c.TURN.MaxAllocationsPerIP = DefaultMaxAllocationsPerIP
	}
	if c.TURN.Credentials == "" {
		c.TURN.Credentials = DefaultCredentials
	}
	if c.TURN.CredentialsPerMinute == 0 {
		c.TURN.CredentialsPerMinute = DefaultCredentialsPerMinute
	}
	if c.TURN.CredentialsBurst == 0 {
		c.TURN.CredentialsBurst = DefaultCredentialsBurst
	}
	if c.TURN.MaxTCPConnectionsPerIP == 0 {
		c.TURN.MaxTCPConnectionsPerIP = DefaultMaxTCPConnectionsPerIP
	}
	if c.Signaling.MaxPeersPerRoom == 0 {
		c.Signaling.MaxPeersPerRoom = DefaultMaxPeersPerRoom
	}
	if c.Signaling.MaxRooms == 0 {
		c.Signaling.MaxRooms = DefaultMaxRooms
	}
	if c.Signaling.MaxConnectionsPerIP == 0 {
		c.Signaling.MaxConnectionsPerIP = DefaultMaxConnectionsPerIP
	}
	if c.Metrics.Listen == nil {
		l := DefaultMetricsListen
		c.Metrics.Listen = &l
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.IPv6ClientPrefix == 0 {
		c.IPv6ClientPrefix = clientaddr.DefaultIPv6Prefix
	}
	if c.IPv6AggregatePrefix == 0 {
		c.IPv6AggregatePrefix = min(clientaddr.DefaultIPv6AggregatePrefix, c.IPv6ClientPrefix)
	}
	if c.IPv6AggregateFactor == 0 {
		c.IPv6AggregateFactor = clientaddr.DefaultIPv6AggregateFactor
	}
}

func bad(key, format string, args ...any) *Error {
	return &Error{Key: key, Reason: fmt.Sprintf(format, args...)}
}

func (c *Config) validate() (*Parsed, *Error) {
	p := &Parsed{}
	switch c.PublicIP {
	case "", PublicIPAuto:
		p.PublicIPMode = PublicIPAuto
	case PublicIPMetadata:
		p.PublicIPMode = PublicIPMetadata
	default:
		p.PublicIPMode = PublicIPAddress
		ip, err := netip.ParseAddr(c.PublicIP)
		if err != nil || ip.Zone() != "" {
			return nil, bad("public_ip", "%q is not an IP address, auto or metadata", c.PublicIP)
		}
		if ip.IsUnspecified() || ip.IsMulticast() {
			return nil, bad("public_ip", "%s cannot be reached by peers", ip)
		}
		p.PublicIP = ip.Unmap()
	}
	if err := checkHostPort(c.HTTP.Listen); err != nil {
		return nil, bad("http.listen", "%v", err)
	}
	for i, o := range c.HTTP.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, bad(fmt.Sprintf("http.allowed_origins[%d]", i), "%q is not an origin like https://example.com", o)
		}
	}
	for i, k := range c.HTTP.APIKeys {
		if len(k) < MinSecretLength {
			return nil, bad(fmt.Sprintf("http.api_keys[%d]", i), "an API key must be at least %d characters", MinSecretLength)
		}
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return nil, bad("log.format", "%q is not text or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return nil, bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	if err := c.validateTLS(p); err != nil {
		return nil, err
	}
	if strings.ContainsAny(c.TURN.Realm, "\"\r\n") || len(c.TURN.Realm) > maxRealmLength {
		return nil, bad("turn.realm", "must be at most %d bytes without quotes or line breaks: "+
			"every unauthenticated Allocate is answered with the realm, and a longer one makes the answer more than 3 times the request", maxRealmLength)
	}
	if len(c.TURN.Listen) == 0 {
		return nil, bad("turn.listen", "at least one listener is needed")
	}
	for i, l := range c.TURN.Listen {
		ln, err := parseListener(l)
		if err != nil {
			return nil, bad(fmt.Sprintf("turn.listen[%d]", i), "%v", err)
		}
		p.TURNListen = append(p.TURNListen, ln)
	}
	lo, hi, err := ParsePortRange(c.TURN.RelayPorts)
	if err != nil {
		return nil, bad("turn.relay_ports", "%v", err)
	}
	p.RelayMin, p.RelayMax = lo, hi
	for i, ln := range p.TURNListen {
		// A relay port is a peer on the server's own address; a listener
		// there would be reachable through the relay.
		if _, port, err := net.SplitHostPort(ln.Addr); err == nil {
			if n, err := strconv.Atoi(port); err == nil && n != 0 && n >= int(lo) && n <= int(hi) {
				return nil, bad(fmt.Sprintf("turn.listen[%d]", i), "port %d is inside turn.relay_ports %d-%d; relay ports are reachable through the relay, so listeners must be outside them", n, lo, hi)
			}
		}
	}
	for i, s := range c.TURN.Secrets {
		if len(s) < MinSecretLength {
			return nil, bad(fmt.Sprintf("turn.secrets[%d]", i), "a secret must be at least %d characters", MinSecretLength)
		}
	}
	if c.TURN.CredentialTTL < time.Second || c.TURN.CredentialTTL > MaxCredentialTTL {
		return nil, bad("turn.credential_ttl", "%s is outside 1s to %s", c.TURN.CredentialTTL, MaxCredentialTTL)
	}
	for name, pw := range c.TURN.Users {
		if name == "" || strings.ContainsAny(name, ":\r\n") || len(name) > 256 {
			return nil, bad("turn.users."+name, "a user name must be 1 to 256 characters without ':' or line breaks")
		}
		if pw == "" {
			return nil, bad("turn.users."+name, "the password is empty")
		}
	}
	if p.DenyPeers, err = parsePrefixes(c.TURN.DenyPeers, true); err != nil {
		return nil, bad("turn.deny_peers", "%v", err)
	}
	if p.AllowPeers, err = parsePrefixes(c.TURN.AllowPeers, false); err != nil {
		return nil, bad("turn.allow_peers", "%v", err)
	}
	if c.TURN.MaxAllocationsPerUser < -1 {
		return nil, bad("turn.max_allocations_per_user", "must be a positive number, or -1 for no cap")
	}
	if c.TURN.MaxAllocations < -1 {
		return nil, bad("turn.max_allocations", "must be a positive number, or -1 for no cap")
	}
	if c.TURN.UDPSockets < 0 || c.TURN.UDPSockets > 64 {
		return nil, bad("turn.udp_sockets", "%d is outside 0 (one per CPU) to 64", c.TURN.UDPSockets)
	}
	if c.TURN.MaxAllocationsPerIP < -1 {
		return nil, bad("turn.max_allocations_per_ip", "must be a positive number, or -1 for no cap")
	}
	if c.TURN.MaxTCPConnectionsPerIP < -1 {
		return nil, bad("turn.max_tcp_connections_per_ip", "must be a positive number, or -1 for no cap")
	}
	if c.TURN.MaxTCPConnections < -1 {
		return nil, bad("turn.max_tcp_connections", "must be a positive number, 0 for automatic, or -1 for no cap")
	}
	if p.MaxBitrate, err = ParseBitrate(c.TURN.MaxBitratePerAllocation); err != nil {
		return nil, bad("turn.max_bitrate_per_allocation", "%v", err)
	}
	if c.TURN.Credentials != CredentialsOnPage && c.TURN.Credentials != CredentialsOnJoin {
		return nil, bad("turn.credentials", "%q is not %s or %s", c.TURN.Credentials, CredentialsOnPage, CredentialsOnJoin)
	}
	if c.TURN.CredentialsPerMinute < -1 {
		return nil, bad("turn.credentials_per_minute", "must be a positive number, or -1 for no limit")
	}
	if c.TURN.CredentialsBurst < 1 || c.TURN.CredentialsBurst > MaxCredentialsBurst {
		return nil, bad("turn.credentials_burst", "%d is outside 1 to %d", c.TURN.CredentialsBurst, MaxCredentialsBurst)
	}
	if c.Signaling.MaxPeersPerRoom < 2 || c.Signaling.MaxPeersPerRoom > 1000 {
		return nil, bad("signaling.max_peers_per_room", "%d is outside 2 to 1000", c.Signaling.MaxPeersPerRoom)
	}
	if c.Signaling.MaxRooms < -1 {
		return nil, bad("signaling.max_rooms", "must be a positive number, or -1 for no cap")
	}
	if c.Signaling.MaxConnectionsPerIP < -1 {
		return nil, bad("signaling.max_connections_per_ip", "must be a positive number, or -1 for no cap")
	}
	if p.TrustedProxies, err = parsePrefixes(c.HTTP.TrustedProxies, false); err != nil {
		return nil, bad("http.trusted_proxies", "%v", err)
	}
	for name := range c.Signaling.Rooms {
		if !roomname.Valid(name) {
			return nil, bad("signaling.rooms."+name, "a room name is 1 to 64 characters of A-Z a-z 0-9 - _")
		}
	}
	if c.IPv6ClientPrefix < 1 || c.IPv6ClientPrefix > 128 {
		return nil, bad("ipv6_client_prefix", "%d is not a prefix length from 1 to 128", c.IPv6ClientPrefix)
	}
	if c.IPv6AggregatePrefix < 1 || c.IPv6AggregatePrefix > c.IPv6ClientPrefix {
		return nil, bad("ipv6_aggregate_prefix", "%d is not a prefix length from 1 to ipv6_client_prefix (%d): the aggregate holds the client prefixes it counts together",
			c.IPv6AggregatePrefix, c.IPv6ClientPrefix)
	}
	if c.IPv6AggregateFactor < 1 || c.IPv6AggregateFactor > clientaddr.MaxIPv6AggregateFactor {
		return nil, bad("ipv6_aggregate_factor", "%d is not from 1 to %d", c.IPv6AggregateFactor, clientaddr.MaxIPv6AggregateFactor)
	}
	if c.ShutdownGrace < 0 || c.ShutdownGrace > MaxShutdownGrace {
		return nil, bad("shutdown_grace", "%s is outside 0s to %s", c.ShutdownGrace, MaxShutdownGrace)
	}
	if l := *c.Metrics.Listen; l != "" {
		if err := checkHostPort(l); err != nil {
			return nil, bad("metrics.listen", "%v", err)
		}
		p.MetricsAddr = l
	}
	if err := c.checkListeners(p); err != nil {
		return nil, err
	}
	if err := c.validateCluster(p); err != nil {
		return nil, err
	}
	if err := c.validateSFU(p); err != nil {
		return nil, err
	}
	if err := c.validateBranding(p); err != nil {
		return nil, err
	}
	return p, nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%q: host must be an IP address, localhost or empty", s)
		}
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port must be 0 to 65535", s)
	}
	return nil
}

func parseListener(s string) (Listener, error) {
	scheme, addr, ok := strings.Cut(s, "://")
	if !ok {
		return Listener{}, fmt.Errorf("%q is not a listener URL like udp://0.0.0.0:3478", s)
	}
	switch scheme {
	case "udp", "tcp", "tls":
	case "dtls":
		return Listener{}, fmt.Errorf("%q: dtls listeners are not supported (udp, tcp, tls)", s)
	default:
		return Listener{}, fmt.Errorf("%q: unknown scheme %q (udp, tcp, tls)", s, scheme)
	}
	if err := checkHostPort(addr); err != nil {
		return Listener{}, err
	}
	return Listener{Network: scheme, Addr: addr}, nil
}

// Bounds of turn.max_bitrate_per_allocation, in bits per second.
const (
	MinBitrate = 8_000
	MaxBitrate = 100_000_000_000
)

// ParseBitrate parses a bitrate in bits per second: a number ("2500000"),
// or a number and a unit, bps, kbps, Mbps or Gbps (decimal multiples, any
// case, an optional space: "2.5Mbps", "800 kbps"). "" and "0" mean no cap
// and return 0. Errors: not a number, an unknown unit, or outside
// MinBitrate to MaxBitrate.
func ParseBitrate(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" || t == "0" {
		return 0, nil
	}
	num := strings.TrimRightFunc(t, func(r rune) bool { return r < '0' || r > '9' && r != '.' })
	unit := strings.ToLower(strings.TrimSpace(t[len(num):]))
	mult, ok := map[string]float64{"": 1, "bps": 1, "kbps": 1e3, "mbps": 1e6, "gbps": 1e9}[unit]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (bps, kbps, Mbps, Gbps)", s, t[len(num):])
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a bitrate like 2.5Mbps", s)
	}
	if v == 0 {
		return 0, nil
	}
	bps := v * mult
	if bps < MinBitrate || bps > MaxBitrate {
		return 0, fmt.Errorf("%q is outside 8kbps to 100Gbps (0 for no cap)", s)
	}
	return int64(bps), nil
}

// ParsePortRange parses "min-max" (inclusive, 1024 to 65535, min <= max).
func ParsePortRange(s string) (lo, hi uint16, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not a range like 49152-65535", s)
	}
	x, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
	y, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 16)
	switch {
	case err1 != nil || err2 != nil:
		return 0, 0, fmt.Errorf("%q: ports must be numbers from 1024 to 65535", s)
	case x < 1024:
		return 0, 0, fmt.Errorf("%q: ports below 1024 are not used for relaying", s)
	case x > y:
		return 0, 0, fmt.Errorf("%q: the first port is above the last", s)
	}
	return uint16(x), uint16(y), nil
}

func parsePrefixes(list []string, allowRecommended bool) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if s == "recommended" && allowRecommended {
			for _, r := range RecommendedDenyPeers {
				out = append(out, netip.MustParsePrefix(r))
			}
			continue
		}
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// ParsePrefix parses a CIDR ("10.0.0.0/8") or a single address, which
// stands for its host prefix (/32 or /128).
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR like 10.0.0.0/8", s)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: zones are not allowed", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR or an IP address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Port returns the port of a validated host:port, 0 when it has none.
func Port(hostport string) int {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

func (c *Config) validateTLS(p *Parsed) *Error {
	t := &c.HTTP.TLS
	files := t.CertFile != "" || t.KeyFile != ""
	if files && (t.CertFile == "" || t.KeyFile == "") {
		return bad("http.tls", "cert_file and key_file go together")
	}
	if files && len(t.ACMEDomains) > 0 {
		return bad("http.tls", "use either cert_file/key_file or acme_domains, not both")
	}
	for i, d := range t.ACMEDomains {
		if !validDomain(d) {
			return bad(fmt.Sprintf("http.tls.acme_domains[%d]", i), "%q is not a DNS name", d)
		}
	}
	if t.ACMEEmail != "" && (!strings.Contains(t.ACMEEmail, "@") || strings.ContainsAny(t.ACMEEmail, " \r\n")) {
		return bad("http.tls.acme_email", "%q is not an email address", t.ACMEEmail)
	}
	if t.ACMEDirectory != "" {
		if u, err := url.Parse(t.ACMEDirectory); err != nil || u.Scheme != "https" || u.Host == "" {
			return bad("http.tls.acme_directory", "%q is not an https URL", t.ACMEDirectory)
		}
	}
	if t.RedirectListen == nil {
		l := ""
		if len(t.ACMEDomains) > 0 {
			l = ":80"
		}
		t.RedirectListen = &l
	}
	if *t.RedirectListen != "" {
		if !files && len(t.ACMEDomains) == 0 {
			return bad("http.tls.redirect_listen", "redirects to https need a certificate (cert_file or acme_domains)")
		}
		if err := checkHostPort(*t.RedirectListen); err != nil {
			return bad("http.tls.redirect_listen", "%v", err)
		}
	}
	p.TLS = files || len(t.ACMEDomains) > 0
	for i, l := range c.TURN.Listen {
		if strings.HasPrefix(l, "tls://") && !p.TLS {
			return bad(fmt.Sprintf("turn.listen[%d]", i), "tls listeners need a certificate in http.tls (cert_file or acme_domains)")
		}
	}
	if c.PublicHost != "" && !validDomain(c.PublicHost) {
		if _, err := netip.ParseAddr(c.PublicHost); err != nil {
			return bad("public_host", "%q is not a DNS name or an IP address", c.PublicHost)
		}
	}
	return nil
}

// validDomain reports whether s is a DNS name: dot-separated labels of
// letters, digits and hyphens, 1 to 253 characters.
func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// maxRealmLength is turnsrv.MaxRealmLength (bytes), which bounds what an
// unauthenticated request can make icebox reflect.
const maxRealmLength = 24
