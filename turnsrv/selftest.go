package turnsrv

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/pion/turn/v4"
)

// SelfTestResult describes a successful self-test.
type SelfTestResult struct {
	Server       string        // the TURN address tested (public IP and UDP port)
	RelayedAddr  string        // XOR-RELAYED-ADDRESS of the test allocation
	RoundTripped time.Duration // time for the relayed packet to come back
}

// SelfTest checks a running TURN server the way a remote client would:
// it makes two allocations at publicIP:port (UDP) with a credential minted
// for user "selftest", sends a packet from the first relayed address to
// the second, which sends it back, and waits for it. Both relayed
// addresses are at the server's public address on relay ports, the one
// place on its own host a relay may reach, so a wrong public IP, a closed
// listener port or a closed relay port range makes it fail, naming the
// step. The whole test is bounded by ctx (use a few seconds).
func SelfTest(ctx context.Context, creds *Credentials, realm string, publicIP netip.Addr, port int) (SelfTestResult, error) {
	server := net.JoinHostPort(publicIP.String(), strconv.Itoa(port))
	res := SelfTestResult{Server: server}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	username, password, _ := creds.Mint("selftest", time.Now())
	done := make(chan struct{})
	defer close(done)
	allocate := func() (net.PacketConn, func(), error) {
		local, err := net.ListenPacket("udp4", "0.0.0.0:0")
		if err != nil {
			return nil, nil, err
		}
		client, err := turn.NewClient(&turn.ClientConfig{
			STUNServerAddr: server, TURNServerAddr: server, Conn: local,
			Username: username, Password: password, Realm: realm,
			RTO: 200 * time.Millisecond,
		})
		if err != nil {
			local.Close()
			return nil, nil, err
		}
		cleanup := func() { client.Close(); local.Close() }
		if err := client.Listen(); err != nil {
			cleanup()
			return nil, nil, err
		}
		go func() { // the client has no context: close it when ctx ends.
			select {
			case <-ctx.Done():
				client.Close()
			case <-done:
			}
		}()
		relay, err := client.Allocate()
		if err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("allocate at %s (is public_ip right and the port open?): %w", server, err)
		}
		return relay, func() { relay.Close(); cleanup() }, nil
	}
	relay, closeRelay, err := allocate()
	if err != nil {
		return res, err
	}
	defer closeRelay()
	res.RelayedAddr = relay.LocalAddr().String()
	msg := []byte("icebox self-test")
	peer, closePeer, err := allocate()
	if err != nil {
		return res, err
	}
	defer closePeer()
	// The peer permits the first relayed address (pion's client asks for
	// a permission on its first send), so what comes from it is relayed.
	if _, err := peer.WriteTo(msg, relay.LocalAddr()); err != nil {
		return res, fmt.Errorf("permission on the second relayed address: %w", err)
	}
	go func() { // the peer answers what reaches it through the relay.
		buf := make([]byte, 1500)
		_ = peer.SetReadDeadline(deadline)
		for {
			n, from, err := peer.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = peer.WriteTo(buf[:n], from)
		}
	}()
	buf := make([]byte, 1500)
	start := time.Now()
	for time.Now().Before(deadline) {
		if _, err := relay.WriteTo(msg, peer.LocalAddr()); err != nil {
			return res, fmt.Errorf("send through the relay: %w", err)
		}
		_ = relay.SetReadDeadline(minTime(deadline, time.Now().Add(500*time.Millisecond)))
		n, _, err := relay.ReadFrom(buf)
		if err == nil && string(buf[:n]) == string(msg) {
			res.RoundTripped = time.Since(start)
			return res, nil
		}
	}
	return res, fmt.Errorf("no packet came back between relayed addresses %s and %s (is the relay port range open?)",
		res.RelayedAddr, peer.LocalAddr())
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// SelfTest runs the package-level SelfTest against this server at at,
// the address and port it advertises for its first UDP listener (the
// caller's advertise.Advertised), with its current credentials.
func (s *Server) SelfTest(ctx context.Context, at netip.AddrPort) (SelfTestResult, error) {
	return SelfTest(ctx, s.policy.Load().creds, s.cfg.Realm, at.Addr(), int(at.Port()))
}
