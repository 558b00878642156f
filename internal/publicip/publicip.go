// Package publicip finds the address peers reach icebox's relay at when
// the configuration does not give one (public_ip: auto or metadata).
//
// Auto looks only at this host: the address every TURN listener binds,
// else an interface address. Metadata asks the cloud's instance metadata
// service over HTTP at a base address that production callers set to
// DefaultMetadataBase (169.254.169.254, link-local) and tests to a fake;
// nothing in this package sends anything unless Metadata is called.
package publicip

import (
	"context"
	"errors"
	"net"
	"net/netip"
)

// Source says where an address came from; its strings appear in logs.
type Source string

const (
	// SourceConfig: public_ip is an address.
	SourceConfig Source = "config"
	// SourceListener: every TURN listener binds this one IPv4 address.
	SourceListener Source = "listener"
	// SourceInterface: the first non-loopback IPv4 address of the host's
	// interfaces.
	SourceInterface Source = "interface"
	// SourceLoopback: nothing better, 127.0.0.1.
	SourceLoopback Source = "loopback"
	// SourceMetadata: the cloud's instance metadata service (Result.Provider
	// says which).
	SourceMetadata Source = "metadata"
)

// Result is a public address and where it came from.
type Result struct {
	Addr   netip.Addr
	Source Source
	// Provider is the metadata service that answered ("aws", "gcp",
	// "azure", "digitalocean", "hetzner", "oracle"); "" otherwise.
	Provider string
	// MetadataErr says why the metadata services gave no address when
	// they were asked and Auto decided instead; nil otherwise.
	MetadataErr error
}

// Interfaces lists the host's interface addresses; net.InterfaceAddrs in
// production, a fixed list in tests.
type Interfaces func() ([]net.Addr, error)

// Auto is public_ip: auto for TURN listeners bound at listenAddrs
// (host:port each): their address when all of them bind the same IPv4
// address (not 0.0.0.0 or ::; "localhost" is 127.0.0.1), else the first
// IPv4 address of ifaces that is neither loopback nor link-local, else
// 127.0.0.1. Nil ifaces: net.InterfaceAddrs.
func Auto(listenAddrs []string, ifaces Interfaces) Result {
	if a, ok := oneListenerAddr(listenAddrs); ok {
		return Result{Addr: a, Source: SourceListener}
	}
	if ifaces == nil {
		ifaces = net.InterfaceAddrs
	}
	if addrs, err := ifaces(); err == nil {
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(n.IP)
			if ip = ip.Unmap(); ok && ip.Is4() && ip.IsGlobalUnicast() {
				return Result{Addr: ip, Source: SourceInterface}
			}
		}
	}
	return Result{Addr: netip.AddrFrom4([4]byte{127, 0, 0, 1}), Source: SourceLoopback}
}

// oneListenerAddr is the IPv4 address every listener binds, if they all
// bind the same one.
func oneListenerAddr(listenAddrs []string) (netip.Addr, bool) {
	var one netip.Addr
	for _, hp := range listenAddrs {
		host, _, err := net.SplitHostPort(hp)
		if err != nil {
			return netip.Addr{}, false
		}
		if host == "localhost" {
			host = "127.0.0.1"
		}
		ip, err := netip.ParseAddr(host)
		if ip = ip.Unmap(); err != nil || !ip.Is4() || ip.IsUnspecified() || one.IsValid() && ip != one {
			return netip.Addr{}, false
		}
		one = ip
	}
	return one, one.IsValid()
}

// Resolve is the address for a public_ip mode: metadata asks Metadata at
// base within MetadataTimeout and falls back to Auto; anything else is
// Auto. (An address in the config needs no resolving: SourceConfig.)
func Resolve(ctx context.Context, metadata bool, base string, listenAddrs []string, ifaces Interfaces) Result {
	if !metadata {
		return Auto(listenAddrs, ifaces)
	}
	ctx, cancel := context.WithTimeout(ctx, MetadataTimeout)
	defer cancel()
	addr, provider, err := Metadata(ctx, base)
	if err == nil {
		return Result{Addr: addr, Source: SourceMetadata, Provider: provider}
	}
	r := Auto(listenAddrs, ifaces)
	r.MetadataErr = err
	return r
}

// ErrNoAnswer is returned by Metadata when no provider gave an address.
var ErrNoAnswer = errors.New("publicip: no instance metadata service gave a public IPv4 address")
