package turnsrv

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"

	"github.com/icebox-project/icebox/internal/stunwire"
)

// One framing, decided here, for the guard and for pion/turn. Every byte
// pion/turn reads has been framed and judged by the guard first, and the
// rules below make sure pion/turn cannot frame or read those bytes any
// other way:
//
//   - Over TCP and TLS (RFC 8656 §12.5), guardConn cuts the stream into
//     frames with tcpFrameLen and hands pion's STUNConn one whole frame per
//     Read. STUNConn frames its buffer again (turn.STUNConn, which looks
//     for the magic cookie before the channel number and sums lengths in
//     16 bits), so a frame is handed on only when STUNConn, starting at its
//     first byte, must cut it exactly where tcpFrameLen did: ChannelData it
//     would cut otherwise is dropped (ErrAmbiguousFrame), and anything that
//     is not TURN or is longer than pion/turn reads ends the connection
//     (ErrNotTURN, ErrFrameTooLarge).
//   - Every packet, UDP datagram or TCP frame, is sorted by packetKind the
//     way pion/turn's handler sorts it (ChannelData when the channel number
//     is 0x4000-0x7FFF and the length fits, otherwise a STUN message, whose
//     decoder ignores the two leading bits), and only ChannelData and
//     well-formed STUN messages reach pion/turn.

// MaxRealmLength is the longest REALM, in bytes, icebox serves: pion/turn's
// 401 challenge to the smallest Allocate it is handed unauthenticated (28
// bytes: the header and REQUESTED-TRANSPORT) is 60 bytes plus the realm
// padded to 4 (a NONCE of 12 and the reason "Unauthorized"), and with a
// realm of at most 24 bytes stays within 84, 3 times the request (RFC 8489
// §9.2.4; the bound icebox audit checks).
const MaxRealmLength = 24

// pionInboundMTU is the read buffer of pion/turn's read loops, set in
// turn.ServerConfig.InboundMTU; a packet of this size or more is dropped
// there as possibly truncated.
const pionInboundMTU = 1600

// maxTCPFrame is the longest TURN-over-TCP frame accepted: the longest
// pion/turn's read loop takes. A longer frame ends the connection
// (ErrFrameTooLarge). 1,599 bytes hold any STUN message a TURN client
// sends and ChannelData carrying a full 1,500-byte packet.
const maxTCPFrame = pionInboundMTU - 1

// tcpFrameHeader is how many bytes tcpFrameLen needs: a STUN header up to
// the magic cookie (RFC 8489 §5). Every accepted frame is at least this
// long, so waiting for these bytes never waits for the next frame.
const tcpFrameHeader = 8

// tcpFrameLen returns the length of the TURN-over-TCP frame whose first
// tcpFrameHeader bytes are h:
//   - a STUN message: the two leading bits zero and the magic cookie in
//     bytes 4-7; 20 bytes of header and the length field's bytes (RFC 8489
//     §5);
//   - ChannelData: the two leading bits 01 (channel numbers 0x4000-0x7FFF);
//     4 bytes of header and the application data padded to a multiple of
//     4 (RFC 8656 §12.5).
//
// Errors: ErrNotTURN for any other first bits, or two zero bits without
// the magic cookie, and ErrFrameTooLarge beyond maxTCPFrame, end the
// connection. ErrAmbiguousFrame, with the frame's length, is ChannelData
// that pion's STUNConn would read as a STUN message (the magic cookie in
// bytes 4-7) or whose framing there would depend on the bytes after it
// (empty ChannelData): the frame is dropped, never handed on. No WebRTC
// packet is such a frame: its first byte (RFC 7983: STUN 0-3, DTLS 20-63,
// RTP 128-191) is not 0x21 followed by 12 A4 42 but for a DTLS 1.3 record
// of an epoch ending in 01 whose sequence and first ciphertext bytes are
// those, one in 2^24 such records.
func tcpFrameLen(h []byte) (int, error) {
	length := int(binary.BigEndian.Uint16(h[2:4]))
	cookie := binary.BigEndian.Uint32(h[4:8]) == stunwire.MagicCookie
	var n int
	switch h[0] & 0xC0 {
	case 0x00:
		if !cookie {
			return 0, ErrNotTURN
		}
		n = 20 + length
	case 0x40:
		n = 4 + (length+3)&^3
		if n <= maxTCPFrame && (cookie || length == 0) {
			return n, ErrAmbiguousFrame
		}
	default:
		return 0, ErrNotTURN
	}
	if n > maxTCPFrame {
		return 0, ErrFrameTooLarge
	}
	return n, nil
}

// kind is what pion/turn would take a packet for.
type kind uint8

const (
	// kindDrop: neither ChannelData nor a STUN message; never handed on.
	kindDrop kind = iota
	// kindChannelData: ChannelData (RFC 8656 §12.4) as pion/turn's
	// handler tests it: a channel number 0x4000-0x7FFF and a length that
	// fits in the packet.
	kindChannelData
	// kindSTUN: a STUN message (RFC 8489 §5): the two leading bits zero,
	// the magic cookie, and a length that fits in the packet.
	kindSTUN
)

// packetKind sorts b, one UDP datagram or one TCP frame, the way
// pion/turn's handler will: ChannelData first, then STUN. A packet that
// is neither, among them "STUN" with leading bits pion's decoder would
// ignore, is kindDrop.
func packetKind(b []byte) kind {
	if len(b) >= 4 && b[0]&0xC0 == 0x40 {
		if int(binary.BigEndian.Uint16(b[2:4])) <= len(b)-4 {
			return kindChannelData
		}
		return kindDrop
	}
	if len(b) >= 20 && b[0]&0xC0 == 0 && binary.BigEndian.Uint32(b[4:8]) == stunwire.MagicCookie &&
		20+int(binary.BigEndian.Uint16(b[2:4])) <= len(b) {
		return kindSTUN
	}
	return kindDrop
}

// frameReader cuts a TURN-over-TCP stream into frames with tcpFrameLen.
type frameReader struct {
	r     *bufio.Reader
	frame []byte
	// dropped, when set, is called for each frame dropped as ambiguous.
	dropped func()
}

func newFrameReader(r io.Reader) frameReader {
	return frameReader{r: bufio.NewReaderSize(r, 4096)}
}

// next reads one frame: a STUN message, or ChannelData with its padding;
// ambiguous frames (ErrAmbiguousFrame) are read and dropped. The returned
// slice is valid until the next call. Errors: ErrNotTURN and
// ErrFrameTooLarge (isFramingError), and the stream's.
func (f *frameReader) next() ([]byte, error) {
	for {
		hdr, err := f.r.Peek(tcpFrameHeader)
		if err != nil {
			return nil, err
		}
		length, err := tcpFrameLen(hdr)
		switch {
		case errors.Is(err, ErrAmbiguousFrame):
			if _, err := f.r.Discard(length); err != nil {
				return nil, err
			}
			if f.dropped != nil {
				f.dropped()
			}
			continue
		case err != nil:
			return nil, err
		}
		if cap(f.frame) < length {
			f.frame = make([]byte, length, max(length, 2048))
		}
		f.frame = f.frame[:length]
		if _, err := io.ReadFull(f.r, f.frame); err != nil {
			return nil, err
		}
		return f.frame, nil
	}
}

// isFramingError reports whether err is one of tcpFrameLen's that end the
// connection.
func isFramingError(err error) bool {
	return errors.Is(err, ErrNotTURN) || errors.Is(err, ErrFrameTooLarge)
}
