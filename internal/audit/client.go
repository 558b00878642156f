package audit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pion/stun/v3"

	"github.com/icebox-project/icebox/internal/stunwire"
)

// Transactions follow RFC 8489 §6.2.1: a request over UDP is sent again
// after RTO, doubling each time, up to maxTransmissions in all. The audit
// reads the socket itself rather than through stun.Client because it must
// count every byte of a transaction on the wire (the amplification check)
// and because this file is the only place it writes to the network: it
// builds requests only, never a Send indication or ChannelData, so no
// datagram can reach a peer through the relay.
const (
	// DefaultRTO is the first retransmission timeout. RFC 8489 recommends
	// 500 ms for unknown paths; the audit talks to one server and halves
	// it to keep a lost-packet wait short.
	DefaultRTO = 250 * time.Millisecond
	// maxTransmissions bounds one transaction: 4 sends wait at most
	// 250+500+1000+2000 ms = 3.75 s with DefaultRTO.
	maxTransmissions = 4
)

// errNoResponse is a transaction that got no answer.
var errNoResponse = errors.New("no response")

// client is a STUN/TURN client over one connected UDP socket: a socket
// connected to the server, so the kernel drops datagrams from any other
// address.
type client struct {
	conn net.Conn
	rto  time.Duration
	// Long-term credential state (RFC 8489 §9.2), set by challenge.
	username, realm, nonce string
	key                    []byte
}

// transaction is one request and what came back.
type transaction struct {
	resp *stun.Message
	// sent and received are bytes on the wire: every transmission of the
	// request and every datagram carrying its transaction ID.
	sent, received, responses int
}

func dialUDP(ctx context.Context, server string, rto time.Duration) (*client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		return nil, err
	}
	if rto <= 0 {
		rto = DefaultRTO
	}
	return &client{conn: conn, rto: rto}, nil
}

func (c *client) Close() error { return c.conn.Close() }

// do sends req until a response with its transaction ID arrives, ctx ends
// or maxTransmissions are spent.
func (c *client) do(ctx context.Context, req *stun.Message) (transaction, error) {
	var tr transaction
	buf := make([]byte, 64<<10)
	rto := c.rto
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	for i := 0; i < maxTransmissions; i++ {
		if ctx.Err() != nil {
			return tr, ctx.Err()
		}
		n, err := c.conn.Write(req.Raw)
		tr.sent += n
		if err != nil {
			return tr, err
		}
		wait := time.Now().Add(rto)
		rto *= 2
		if err := c.conn.SetReadDeadline(wait); err != nil {
			return tr, err
		}
		for {
			n, err := c.conn.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // retransmit
				}
				return tr, err // e.g. ICMP port unreachable: connection refused
			}
			m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if m.Decode() != nil || m.TransactionID != req.TransactionID {
				continue
			}
			tr.received += n
			tr.responses++
			tr.resp = m
			return tr, nil
		}
	}
	if ctx.Err() != nil {
		return tr, ctx.Err()
	}
	return tr, fmt.Errorf("%w from %s after %d transmissions", errNoResponse, c.conn.RemoteAddr(), maxTransmissions)
}

// challenge sends an Allocate without credentials and keeps the REALM and
// NONCE of the 401 it must get (RFC 8656 §7.1, RFC 8489 §9.2.4).
func (c *client) challenge(ctx context.Context) (transaction, error) {
	req, err := stun.Build(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedTransportUDP)
	if err != nil {
		return transaction{}, err
	}
	tr, err := c.do(ctx, req)
	if err != nil {
		return tr, err
	}
	var realm stun.Realm
	var nonce stun.Nonce
	if realm.GetFrom(tr.resp) == nil {
		c.realm = realm.String()
	}
	if nonce.GetFrom(tr.resp) == nil {
		c.nonce = nonce.String()
	}
	return tr, nil
}

// authed sends an authenticated request of method with attrs, retrying
// once with the new nonce after 438 Stale Nonce (RFC 8489 §9.2.5).
func (c *client) authed(ctx context.Context, method stun.Method, attrs ...stun.Setter) (*stun.Message, error) {
	for try := 0; ; try++ {
		setters := append([]stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}, attrs...)
		setters = append(setters, stun.NewUsername(c.username), stun.NewRealm(c.realm), stun.NewNonce(c.nonce),
			stun.MessageIntegrity(c.key), stun.Fingerprint)
		req, err := stun.Build(setters...)
		if err != nil {
			return nil, err
		}
		tr, err := c.do(ctx, req)
		if err != nil {
			return nil, err
		}
		code, _ := errorCode(tr.resp)
		if code == stun.CodeStaleNonce && try == 0 {
			var nonce stun.Nonce
			if nonce.GetFrom(tr.resp) == nil {
				c.nonce = nonce.String()
				continue
			}
		}
		return tr.resp, nil
	}
}

// errorCode is the ERROR-CODE of an error response; ok is false for a
// success response or an error response without the attribute.
func errorCode(m *stun.Message) (code stun.ErrorCode, ok bool) {
	var ec stun.ErrorCodeAttribute
	if m.Type.Class != stun.ClassErrorResponse || ec.GetFrom(m) != nil {
		return 0, false
	}
	return ec.Code, true
}

// outcome says in words what a response was: "success", "403 Forbidden",
// or "error response without ERROR-CODE".
func outcome(m *stun.Message) string {
	switch m.Type.Class {
	case stun.ClassSuccessResponse:
		return "success"
	case stun.ClassErrorResponse:
		var ec stun.ErrorCodeAttribute
		if ec.GetFrom(m) != nil {
			return "error response without ERROR-CODE"
		}
		if len(ec.Reason) > 0 {
			return fmt.Sprintf("%d %s", ec.Code, ec.Reason)
		}
		return fmt.Sprintf("%d", ec.Code)
	}
	return m.Type.String()
}

// requestedTransportUDP is REQUESTED-TRANSPORT with protocol 17 (UDP),
// RFC 8656 §18.7.
var requestedTransportUDP = stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}

// xorPeerAddress is an XOR-PEER-ADDRESS (RFC 8656 §18.3) that keeps the
// address family of a: IPv4 for a 4-byte address, IPv6 for anything else,
// including an IPv4-mapped address. stun.XORMappedAddress encodes a mapped
// address as IPv4, which would hide exactly the form the audit tries.
type xorPeerAddress netip.AddrPort

func (a xorPeerAddress) AddTo(m *stun.Message) error {
	ap := netip.AddrPort(a)
	ip := ap.Addr().AsSlice()
	family := uint16(0x01)
	if len(ip) == 16 {
		family = 0x02
	}
	v := make([]byte, 4+len(ip))
	binary.BigEndian.PutUint16(v[0:2], family)
	binary.BigEndian.PutUint16(v[2:4], ap.Port()^(stunwire.MagicCookie>>16))
	var key [16]byte
	binary.BigEndian.PutUint32(key[0:4], stunwire.MagicCookie)
	copy(key[4:], m.TransactionID[:])
	for i := range ip {
		v[4+i] = ip[i] ^ key[i]
	}
	m.Add(stun.AttrXORPeerAddress, v)
	return nil
}

// lifetime is a LIFETIME attribute in seconds (RFC 8656 §18.2).
type lifetime uint32

func (l lifetime) AddTo(m *stun.Message) error {
	v := make([]byte, 4)
	binary.BigEndian.PutUint32(v, uint32(l))
	m.Add(stun.AttrLifetime, v)
	return nil
}
