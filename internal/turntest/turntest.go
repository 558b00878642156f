// Package turntest holds TURN client helpers for icebox's tests: a pion
// TURN client holding one allocation, a relayed echo, and a UDP echo peer.
package turntest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"
)

// Relay is one allocation made with pion's TURN client over UDP.
type Relay struct {
	Client *turn.Client
	Conn   net.PacketConn // the relayed transport address
	local  net.PacketConn
}

// Allocate makes an allocation on server (host:port, UDP) with a
// long-term credential in realm "icebox".
func Allocate(server, username, password string) (*Relay, error) {
	local, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: server, TURNServerAddr: server, Conn: local,
		Username: username, Password: password, Realm: "icebox"})
	if err == nil {
		err = c.Listen()
	}
	if err != nil {
		local.Close()
		return nil, err
	}
	conn, err := c.Allocate()
	if err != nil {
		c.Close()
		local.Close()
		return nil, err
	}
	return &Relay{Client: c, Conn: conn, local: local}, nil
}

// MustAllocate is Allocate that fails the test on error and closes the
// allocation when the test ends.
func MustAllocate(t testing.TB, server, username, password string) *Relay {
	t.Helper()
	r, err := Allocate(server, username, password)
	if err != nil {
		t.Fatalf("allocate on %s: %v", server, err)
	}
	t.Cleanup(r.Close)
	return r
}

// Close releases the allocation.
func (r *Relay) Close() {
	r.Conn.Close()
	r.Client.Close()
	r.local.Close()
}

// Echo sends a packet through the relay to peer (an echo peer) and waits
// for it to come back, retrying up to five times.
func (r *Relay) Echo(peer net.Addr) error { return Echo(r.Conn, peer) }

// Echo does the same over any relayed connection.
func Echo(relay net.PacketConn, peer net.Addr) error {
	buf := make([]byte, 1500)
	for try := 0; try < 5; try++ {
		if _, err := relay.WriteTo([]byte("ping"), peer); err != nil {
			return err
		}
		_ = relay.SetReadDeadline(time.Now().Add(time.Second))
		if n, from, err := relay.ReadFrom(buf); err == nil && string(buf[:n]) == "ping" && from.String() == peer.String() {
			return nil
		}
	}
	return errors.New("no echo through the relay")
}

// RelayMin and RelayMax are the relay port range icebox's tests give
// their servers (turn.relay_ports "20000-29999"). icebox relays to its
// own host's addresses only on relay ports, so a test peer on loopback
// listens on a port inside this range. The range lies below Linux's
// ephemeral ports (32768-60999), so a listener bound to port 0 never lands
// in it, as a configured listener may not (check-config refuses it).
const (
	RelayMin = 20000
	RelayMax = 29999
)

// UDPEcho starts a UDP echo peer on 127.0.0.1, on a free port between
// RelayMin and RelayMax, allocating nothing per datagram; it stops when
// the test ends.
func UDPEcho(t testing.TB) net.Addr {
	t.Helper()
	c, err := StartUDPEchoIn(RelayMin, RelayMax)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr()
}

// StartUDPEchoIn starts a UDP peer on 127.0.0.1, on a free port in
// [lo, hi], with a 4 MiB receive buffer, that sends every datagram back,
// allocating nothing per datagram, until the returned conn is closed.
func StartUDPEchoIn(lo, hi int) (*net.UDPConn, error) {
	c, err := ListenUDPIn(lo, hi)
	if err != nil {
		return nil, err
	}
	_ = c.SetReadBuffer(4 << 20)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, a, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteToUDPAddrPort(buf[:n], a)
		}
	}()
	return c, nil
}

// ListenUDPIn binds a UDP socket on 127.0.0.1 to a free port in [lo, hi],
// trying them from a random start.
func ListenUDPIn(lo, hi int) (*net.UDPConn, error) {
	if lo < 1 || hi > 65535 || lo > hi {
		return nil, fmt.Errorf("turntest: bad port range %d-%d", lo, hi)
	}
	n := hi - lo + 1
	start := rand.IntN(n)
	var err error
	for i := 0; i < n; i++ {
		var c *net.UDPConn
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: lo + (start+i)%n})
		if err == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("turntest: no free UDP port in %d-%d: %w", lo, hi, err)
}

// TCPBinding sends a STUN Binding request (RFC 8489 §3) on a TURN-over-TCP
// connection and reads the answer: nil for the matching Binding success
// response, the read error (io.EOF, a reset) when the server closed the
// connection instead. wait bounds the read only as a test failure guard.
func TCPBinding(c net.Conn, wait time.Duration) error {
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if _, err := c.Write(req.Raw); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	defer c.SetReadDeadline(time.Time{})
	hdr := make([]byte, 20)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return err
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[2:4]))
	if _, err := io.ReadFull(c, body); err != nil {
		return err
	}
	m := &stun.Message{Raw: append(hdr, body...)}
	if err := m.Decode(); err != nil {
		return err
	}
	if m.Type != stun.BindingSuccess || m.TransactionID != req.TransactionID {
		return fmt.Errorf("got %s, want the Binding success response", m.Type)
	}
	return nil
}

// ExpectMarkerFirst relays "marker" through relay to peer, resending a
// lost one up to five times, and fails the test unless the first datagram
// peer reads is that marker: whatever else was sent to peer before (what a
// test says must never arrive) would be read first.
func ExpectMarkerFirst(t testing.TB, relay net.PacketConn, peer net.PacketConn) {
	t.Helper()
	buf := make([]byte, 1500)
	for try := 0; ; try++ {
		if _, err := relay.WriteTo([]byte("marker"), peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		_ = peer.SetReadDeadline(time.Now().Add(time.Second))
		n, _, err := peer.ReadFrom(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && try < 5 {
			continue // the marker was lost; send it again
		}
		if err != nil {
			t.Fatalf("the marker did not arrive: %v", err)
		}
		if got := string(buf[:n]); got != "marker" {
			t.Fatalf("the peer received %q before the marker", got)
		}
		return
	}
}
