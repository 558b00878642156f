package audit

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Files that say which local ports the kernel hands out to sockets bound
// without a port (Linux, ip-sysctl.rst): the ephemeral range, and the
// ports reserved from it.
const (
	ephemeralRangeFile = "/proc/sys/net/ipv4/ip_local_port_range"
	reservedPortsFile  = "/proc/sys/net/ipv4/ip_local_reserved_ports"
)

// ephemeralOverlap returns the relay ports in [lo, hi] that the kernel may
// give to another program's socket as its ephemeral port: the overlap of
// the relay range with ip_local_port_range, less ip_local_reserved_ports.
// Such a socket (a resolver's query, an NTP client) would be reachable
// through the relay, since the server's own address is a peer on relay
// ports. It returns the first such port and how many there are; 0, 0 when
// none or when the files cannot be read (not Linux).
func ephemeralOverlap(lo, hi uint16, rangeText, reservedText string) (first, count int) {
	f := strings.Fields(rangeText)
	if len(f) != 2 {
		return 0, 0
	}
	eLo, err1 := strconv.Atoi(f[0])
	eHi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return 0, 0
	}
	reserved := parsePortList(reservedText)
	for p := max(int(lo), eLo); p <= min(int(hi), eHi); p++ {
		if !reserved(p) {
			if count == 0 {
				first = p
			}
			count++
		}
	}
	return first, count
}

// parsePortList parses the kernel's "a-b,c,d-e" port list into a lookup.
func parsePortList(s string) func(int) bool {
	type span struct{ lo, hi int }
	var spans []span
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		a, b, isRange := strings.Cut(part, "-")
		lo, err := strconv.Atoi(strings.TrimSpace(a))
		if err != nil {
			continue
		}
		hi := lo
		if isRange {
			if hi, err = strconv.Atoi(strings.TrimSpace(b)); err != nil {
				continue
			}
		}
		spans = append(spans, span{lo, hi})
	}
	return func(p int) bool {
		for _, sp := range spans {
			if p >= sp.lo && p <= sp.hi {
				return true
			}
		}
		return false
	}
}

// CheckRelayEphemeral names the check of this host's ephemeral ports
// against the relay range.
const CheckRelayEphemeral = "relay-ports-not-ephemeral"

// EphemeralWarning says which relay ports in [lo, hi] this host's kernel
// may hand out as ephemeral ports (Linux), and how to reserve them; ""
// when there are none or the kernel's files cannot be read. icebox logs
// it at start, and the audit of a configuration reports it.
func EphemeralWarning(lo, hi uint16) string {
	rangeText, err := os.ReadFile(ephemeralRangeFile)
	if err != nil {
		return ""
	}
	reservedText, _ := os.ReadFile(reservedPortsFile)
	first, n := ephemeralOverlap(lo, hi, string(rangeText), string(reservedText))
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d ports of turn.relay_ports %d-%d (from %d) are also in the kernel's ephemeral port range, "+
		"so another program's outgoing UDP socket may get one and be reachable through the relay; reserve them: "+
		"sysctl -w net.ipv4.ip_local_reserved_ports=%d-%d (and in /etc/sysctl.d), or choose relay_ports outside %s",
		n, lo, hi, first, lo, hi, strings.Join(strings.Fields(string(rangeText)), "-"))
}

// relayEphemeral is the check of this host's ephemeral ports against the
// relay range: run only where the audited server is this host
// (Config.LocalHost) and its relay range is known.
func relayEphemeral(cfg Config) Result {
	switch {
	case !cfg.LocalHost:
		return skip(CheckRelayEphemeral, "not run: the server is not known to be this host (it needs -config)")
	case cfg.RelayMin == 0 || cfg.RelayMax == 0:
		return skip(CheckRelayEphemeral, "not run: the relay port range is unknown")
	}
	if _, err := os.ReadFile(ephemeralRangeFile); err != nil {
		return skip(CheckRelayEphemeral, "not run: %v", err)
	}
	if w := EphemeralWarning(cfg.RelayMin, cfg.RelayMax); w != "" {
		return fail(CheckRelayEphemeral, "%s", w)
	}
	return pass(CheckRelayEphemeral, "no port of turn.relay_ports %d-%d is handed out as an ephemeral port on this host", cfg.RelayMin, cfg.RelayMax)
}
