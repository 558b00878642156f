package turnsrv

import (
	"encoding/binary"

	"github.com/icebox-project/icebox/internal/stunwire"
)

// A listener shared with HTTP (Listener.ShareHTTP) tells its connections
// apart once, after the TLS handshake if any: by the application protocol
// the client chose (ALPN, RFC 7301: "stun.turn" for TURN over TLS, RFC
// 7443; "h2" or "http/1.1" for HTTP; "acme-tls/1", ACME's TLS-ALPN-01
// challenge, closed after its handshake), and when it chose none by the
// first bytes of the (decrypted) stream, classify below.

// ALPN protocol IDs a shared TLS listener tells connections apart by.
const (
	// ALPNTURN is the ALPN protocol ID of TURN over TLS (RFC 7443 §3).
	ALPNTURN = "stun.turn"
	// alpnH2 and alpnHTTP1 are HTTP/2 and HTTP/1.1 (RFC 7301 §6, RFC
	// 9113 §3.2).
	alpnH2    = "h2"
	alpnHTTP1 = "http/1.1"
	// alpnACME is ACME's TLS-ALPN-01 challenge (RFC 8737 §6.2); the
	// certificate manager answers it during the handshake, and the
	// connection is closed after it.
	alpnACME = "acme-tls/1"
)

// classifyBytes is how many first bytes at most classify needs: an HTTP
// method of up to 7 letters and its space ("OPTIONS ", "CONNECT "), or a
// STUN header's first 8 bytes, which hold the magic cookie.
const classifyBytes = 8

// streamKind is what the first bytes of a stream are.
type streamKind uint8

const (
	// kindMore: the bytes so far could be either; read more (up to
	// classifyBytes).
	kindMore streamKind = iota
	// kindTURN: a STUN message (RFC 8489 §5: the two leading zero bits and
	// the magic cookie) or ChannelData (RFC 8656 §12.4: first byte
	// 0x40-0x7F) that is not an HTTP request line.
	kindTURN
	// kindHTTP: an HTTP/1.x request line's method, upper-case letters and
	// a space (RFC 9112 §3), or HTTP/2's connection preface, which begins
	// "PRI " (RFC 9113 §3.4).
	kindHTTP
	// kindNeither: neither protocol; the connection is closed.
	kindNeither
)

func (k streamKind) String() string {
	switch k {
	case kindTURN:
		return "turn"
	case kindHTTP:
		return "http"
	case kindNeither:
		return "neither"
	}
	return "more"
}

// classify tells TURN from HTTP by the first bytes b of a stream. It needs
// at most classifyBytes bytes: with that many it never answers kindMore.
//
// HTTP methods start with upper-case letters, 0x41-0x5A, which are also
// first bytes of ChannelData (channel numbers 0x4000-0x7FFF). On a new
// connection ChannelData cannot be valid (a channel is bound on an
// allocation, which a new connection does not have yet), so bytes that
// read as a method and a space are HTTP, and any other first byte in
// 0x40-0x7F is ChannelData, left for TURN to drop. A first byte of 0x00 to
// 0x3F is STUN only with the magic cookie in bytes 4 to 7. Anything else
// (0x80 to 0xFF, a TLS record in plain TCP, …) is neither.
func classify(b []byte) streamKind {
	if len(b) == 0 {
		return kindMore
	}
	switch c := b[0]; {
	case c&0xC0 == 0: // STUN: the two leading bits are zero.
		if len(b) < 8 {
			return kindMore
		}
		if binary.BigEndian.Uint32(b[4:8]) == stunwire.MagicCookie {
			return kindTURN
		}
		return kindNeither
	case c&0xC0 == 0x40: // ChannelData, or an HTTP method.
		if c < 'A' || c > 'Z' {
			return kindTURN
		}
		for i := 1; i < len(b) && i < classifyBytes; i++ {
			switch {
			case b[i] == ' ':
				return kindHTTP
			case b[i] < 'A' || b[i] > 'Z':
				return kindTURN
			}
		}
		if len(b) >= classifyBytes {
			return kindTURN // no method is 8 letters long
		}
		return kindMore
	}
	return kindNeither
}
