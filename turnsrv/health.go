package turnsrv

import (
	"fmt"
	"net"
	"time"

	"github.com/pion/stun/v3"
)

// Healthy sends a STUN Binding request (RFC 8489 §3) to every UDP
// listener and opens a connection to every TCP listener, over loopback
// when a listener is bound to a wildcard address. It returns the first
// failure, or nil.
func (s *Server) Healthy(timeout time.Duration) error {
	for _, a := range s.addrs {
		target := a.String()
		switch a := a.(type) {
		case *net.UDPAddr:
			if a.IP.IsUnspecified() {
				target = net.JoinHostPort("127.0.0.1", fmt.Sprint(a.Port))
			}
			if err := bindingRoundTrip(target, timeout); err != nil {
				return fmt.Errorf("turn udp %s: %w", target, err)
			}
		case *net.TCPAddr:
			if a.IP.IsUnspecified() {
				target = net.JoinHostPort("127.0.0.1", fmt.Sprint(a.Port))
			}
			c, err := net.DialTimeout("tcp", target, timeout)
			if err != nil {
				return fmt.Errorf("turn tcp %s: %w", target, err)
			}
			c.Close()
		}
	}
	return nil
}

func bindingRoundTrip(target string, timeout time.Duration) error {
	c, err := net.Dial("udp", target)
	if err != nil {
		return err
	}
	defer c.Close()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if _, err := c.Write(req.Raw); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	resp := &stun.Message{Raw: buf[:n]}
	if err := resp.Decode(); err != nil {
		return err
	}
	if resp.TransactionID != req.TransactionID || resp.Type != stun.BindingSuccess {
		return fmt.Errorf("unexpected answer %s", resp.Type)
	}
	return nil
}
