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
// first bytes of the (decrypted) stream, classify below. A listener that
// also takes ICE-TCP for the SFU (Listener.ICETCP) looks at the first
// bytes before TLS too (classifyRaw): browsers speak ICE-TCP without TLS.

// ALPN protocol IDs a shared TLS listener tells connections apart by.
const (
	// ALPNTURN is the ALPN protocol ID of TURN over TLS (RFC 7443 §3).
	ALPNTURN = "stun.turn"
	// alpnACME is ACME's TLS-ALPN-01 challenge (RFC 8737 §6.2); the
	// certificate manager answers it during the handshake, and the
	// connection is closed after it.
	alpnACME = "acme-tls/1"
)

// classifyBytes is how many first bytes at most classify needs: an HTTP
// method of up to 7 letters and its space ("OPTIONS ", "CONNECT "), a
// STUN header's first 8 bytes, which hold the magic cookie, or the
// RFC 4571 length and a STUN header's first 8 bytes (ICE-TCP).
const classifyBytes = 10

// httpMethodBytes is how many bytes an HTTP request line's method and its
// space take at most.
const httpMethodBytes = 8

// maxICEFirstFrame is the longest first frame of an ICE-TCP connection,
// bytes: a STUN Binding request (a browser's is about 100 bytes). pion's
// ICE TCP mux reads the first message into 512 bytes.
const maxICEFirstFrame = 512

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
	// kindICE: ICE-TCP (RFC 6544), a connectivity check framed by RFC
	// 4571: a 2-byte length of 20 to maxICEFirstFrame, a multiple of 4,
	// then a STUN Binding request (type 0x0001) whose message length is
	// that length less its 20-byte header, and the magic cookie, in
	// bytes 6 to 9.
	kindICE
	// kindTLS (classifyRaw only): a TLS record, or anything that is not
	// ICE-TCP, for the TLS handshake to take or fail.
	kindTLS
	// kindNeither: neither protocol; the connection is closed.
	kindNeither
)

func (k streamKind) String() string {
	switch k {
	case kindTURN:
		return "turn"
	case kindHTTP:
		return "http"
	case kindICE:
		return "ice"
	case kindTLS:
		return "tls"
	case kindNeither:
		return "neither"
	}
	return "more"
}

// classify tells TURN, HTTP and ICE-TCP apart by the first bytes b of a
// stream. It needs at most classifyBytes bytes: with that many it never
// answers kindMore.
//
// HTTP methods start with upper-case letters, 0x41-0x5A, which are also
// first bytes of ChannelData (channel numbers 0x4000-0x7FFF). On a new
// connection ChannelData cannot be valid (a channel is bound on an
// allocation, which a new connection does not have yet), so bytes that
// read as a method and a space are HTTP, and any other first byte in
// 0x40-0x7F is ChannelData, left for TURN to drop. A first byte of 0x00 to
// 0x3F is STUN with the magic cookie in bytes 4 to 7, and ICE-TCP with
// the framed header of a Binding request and the cookie in bytes 6 to 9
// (kindICE); no stream is both, since ICE-TCP's bytes 4 and 5 hold a
// message length below 0x2112, the cookie's first half. Anything else
// (0x80 to 0xFF, a TLS record in plain TCP, …) is neither.
func classify(b []byte) streamKind {
	if len(b) == 0 {
		return kindMore
	}
	switch c := b[0]; {
	case c&0xC0 == 0: // STUN, bare or framed: the two leading bits are zero.
		turn, ice := prefixOf(b, 4, cookie[:]), iceFrame(b)
		switch {
		case turn && len(b) >= 8:
			return kindTURN
		case ice && len(b) >= classifyBytes:
			return kindICE
		case turn || ice:
			return kindMore
		}
		return kindNeither
	case c&0xC0 == 0x40: // ChannelData, or an HTTP method.
		if c < 'A' || c > 'Z' {
			return kindTURN
		}
		for i := 1; i < len(b) && i < httpMethodBytes; i++ {
			switch {
			case b[i] == ' ':
				return kindHTTP
			case b[i] < 'A' || b[i] > 'Z':
				return kindTURN
			}
		}
		if len(b) >= httpMethodBytes {
			return kindTURN // no method is 8 letters long
		}
		return kindMore
	}
	return kindNeither
}

// classifyRaw tells ICE-TCP from TLS by the first bytes b of a stream to
// a listener that does TLS: ICE-TCP as classify sees it is kindICE, and
// anything else kindTLS, for the handshake to take or refuse, as soon as
// it cannot be ICE-TCP. A TLS record's first byte, 0x14 to 0x17 (RFC 8446
// §5.1; a ClientHello's is 0x16), is decided at once: no ICE-TCP first
// frame (at most maxICEFirstFrame bytes) starts with it.
func classifyRaw(b []byte) streamKind {
	switch {
	case !iceFrame(b):
		return kindTLS
	case len(b) >= classifyBytes:
		return kindICE
	}
	return kindMore
}

// cookie is the magic cookie's bytes.
var cookie = binary.BigEndian.AppendUint32(nil, stunwire.MagicCookie)

// prefixOf says whether the bytes of b from offset at agree with want as
// far as b goes.
func prefixOf(b []byte, at int, want []byte) bool {
	for i, w := range want {
		if at+i >= len(b) {
			return true
		}
		if b[at+i] != w {
			return false
		}
	}
	return true
}

// iceFrame says whether b could begin an ICE-TCP first frame (kindICE)
// as far as it goes.
func iceFrame(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if int(b[0])<<8 > maxICEFirstFrame {
		return false
	}
	if len(b) < 2 {
		return true
	}
	n := int(binary.BigEndian.Uint16(b))
	if n < 20 || n > maxICEFirstFrame || n%4 != 0 {
		return false
	}
	var hdr [8]byte
	binary.BigEndian.PutUint16(hdr[0:], 0x0001) // Binding request (RFC 8489 §5)
	binary.BigEndian.PutUint16(hdr[2:], uint16(n-20))
	copy(hdr[4:], cookie)
	return prefixOf(b, 2, hdr[:])
}
