package turnsrv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"
)

// frameConn is a net.Conn whose Reads return the given frames one each,
// as guardConn hands them to pion/turn, then io.EOF.
type frameConn struct {
	net.Conn // nil: only Read and RemoteAddr are used
	frames   [][]byte
}

func (c *frameConn) Read(p []byte) (int, error) {
	if len(c.frames) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.frames[0])
	if c.frames[0] = c.frames[0][n:]; len(c.frames[0]) == 0 {
		c.frames = c.frames[1:]
	}
	return n, nil
}

func (c *frameConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5000}
}

// pionIsChannelData is pion/turn's test for ChannelData in its handler
// (internal/proto.IsChannelData, v4.1.4), which it applies before
// decoding a packet as STUN.
func pionIsChannelData(b []byte) bool {
	return len(b) >= 4 && int(binary.BigEndian.Uint16(b[2:4])) <= len(b)-4 &&
		binary.BigEndian.Uint16(b[0:2]) >= 0x4000 && binary.BigEndian.Uint16(b[0:2]) <= 0x7FFF
}

// FuzzFraming feeds one byte stream to the guard's framer and, frame by
// frame as guardConn hands them on, to pion/turn's STUNConn, and fails
// when the two cut it differently: pion/turn must read exactly the frames
// the guard judged. Every frame, and the stream taken as one UDP
// datagram, is then given to the guard: when the guard passes a packet
// untouched, pion/turn must not take it for an authenticated Allocate,
// Refresh, CreatePermission or ChannelBind, since the fuzzer's credentials
// never verify.
func FuzzFraming(f *testing.F) {
	alloc := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), udpTransport,
		stun.NewUsername("1:x"), stun.NewRealm(realm), stun.NewNonce("n"), stun.MessageIntegrity("k"))
	f.Add(wrapped(alloc.Raw))
	f.Add(append([]byte{0x40, 0x00, 0x00, 0x04, 0x21, 0x12, 0xA4, 0x42}, alloc.Raw...)) // ChannelData pion reads as STUN
	f.Add(append([]byte{0x40, 0x01, 0x00, 0x02, 'h', 'i', 0, 0}, alloc.Raw...))
	f.Add(append([]byte{0x40, 0x00, 0x00, 0x00}, alloc.Raw...))      // empty ChannelData
	f.Add([]byte{0x00, 0x01, 0xFF, 0xF0, 0x21, 0x12, 0xA4, 0x42})    // a length pion sums past 16 bits
	f.Add([]byte{0x40, 0x00, 0xFF, 0xFD, 1, 2, 3, 4, 5, 6, 7, 8, 9}) // likewise, with padding
	f.Add(append([]byte{0x80 | alloc.Raw[0]}, alloc.Raw[1:]...))     // leading bits pion ignores
	f.Add(append(append([]byte(nil), alloc.Raw...), 0x40, 0x01, 0, 1, 9, 0x21, 0x12, 0xA4))

	s := startServer(f, nil)
	src := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5000}
	local := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3478}
	m := new(stun.Message)
	f.Fuzz(func(t *testing.T, stream []byte) {
		fr := newFrameReader(bytes.NewReader(stream))
		var frames [][]byte
		for {
			b, err := fr.next()
			if err != nil {
				break
			}
			frames = append(frames, bytes.Clone(b))
		}
		pion := turn.NewSTUNConn(&frameConn{frames: append([][]byte(nil), frames...)})
		buf := make([]byte, pionInboundMTU)
		for i, want := range frames {
			if packetKind(want) == kindDrop {
				t.Fatalf("frame %d (%x) is neither STUN nor ChannelData", i, want)
			}
			n, _, err := pion.ReadFrom(buf)
			if err != nil {
				// pion/turn waits for a ninth byte before it cuts any frame:
				// an 8-byte frame at the end stays in its buffer.
				if i == len(frames)-1 && len(want) < 9 && errors.Is(err, io.EOF) {
					break
				}
				t.Fatalf("frame %d (%x): pion/turn: %v", i, want, err)
			}
			if !bytes.Equal(buf[:n], want) {
				t.Fatalf("frame %d: the guard cut %x, pion/turn read %x", i, want, buf[:n])
			}
		}
		for _, b := range append(frames, stream) {
			b = bytes.Clone(b)
			_, n, pass := s.guard.Admit(m, b, src, local)
			if !pass || n != len(b) || pionIsChannelData(b) {
				continue
			}
			seen := &stun.Message{Raw: b}
			if seen.Decode() != nil || seen.Type.Class != stun.ClassRequest || !seen.Contains(stun.AttrMessageIntegrity) {
				continue
			}
			switch seen.Type.Method {
			case stun.MethodAllocate, stun.MethodRefresh, stun.MethodCreatePermission, stun.MethodChannelBind:
				t.Fatalf("the guard passed %x untouched; pion/turn reads an authenticated %s", b, seen.Type)
			}
		}
	})
}
