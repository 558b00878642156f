package sfu

import (
	"slices"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
)

// TestNACKFilter: a packet NACKed again within resendGap of its last
// resend, or after maxResends resends, is not asked of the responder; a
// packet NACKed for the first time, or again after resendGap, is; NACKs
// for a stream this side does not send, and other RTCP, pass untouched.
func TestNACKFilter(t *testing.T) {
	now := time.Unix(1000, 0)
	dropped := 0
	f, err := (&nackFilterFactory{now: func() time.Time { return now }, dropped: func(n int) { dropped += n }}).NewInterceptor("")
	if err != nil {
		t.Fatal(err)
	}
	const ssrc, other = 1111, 2222
	f.BindLocalStream(&interceptor.StreamInfo{SSRC: ssrc}, nil)
	var next []byte // what the transport gives the filter next
	r := f.BindRTCPReader(interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		return copy(b, next), a, nil
	}))
	// read passes pkts through the filter and returns the sequence
	// numbers of the NACK for media SSRC m that come out.
	read := func(m uint32, seqs ...uint16) []uint16 {
		t.Helper()
		var err error
		next, err = rtcp.Marshal([]rtcp.Packet{
			&rtcp.ReceiverReport{SSRC: 9},
			&rtcp.TransportLayerNack{SenderSSRC: 9, MediaSSRC: m, Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)},
		})
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		n, _, err := r.Read(buf, interceptor.Attributes{})
		if err != nil {
			t.Fatal(err)
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			t.Fatalf("the filter's output: %v", err)
		}
		if _, ok := pkts[0].(*rtcp.ReceiverReport); !ok {
			t.Fatalf("the filter's output starts with %T, want the receiver report", pkts[0])
		}
		var out []uint16
		for _, p := range pkts[1:] {
			for _, pair := range p.(*rtcp.TransportLayerNack).Nacks {
				out = append(out, pair.PacketList()...)
			}
		}
		return out
	}
	check := func(what string, got []uint16, want ...uint16) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v asked of the responder, want %v", what, got, want)
		}
	}
	check("first NACK", read(ssrc, 10, 11, 40), 10, 11, 40)
	now = now.Add(100 * time.Millisecond)
	check("100 ms later, with a new one", read(ssrc, 10, 11, 12), 12)
	now = now.Add(100 * time.Millisecond)
	check("200 ms after the first", read(ssrc, 10, 11), 10, 11)
	now = now.Add(200 * time.Millisecond)
	check("third resend", read(ssrc, 10), 10)
	now = now.Add(200 * time.Millisecond)
	check("a fourth", read(ssrc, 10))
	check("another stream's", read(other, 10, 11), 10, 11)
	check("far ahead", read(ssrc, 5000), 5000)
	check("older than the log", read(ssrc, 5000-resendLog, 4999), 4999)
	// A compound of one NACK with nothing left in it is not passed on:
	// the reader gives the next compound instead.
	only, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.TransportLayerNack{SenderSSRC: 9, MediaSSRC: ssrc, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{10})}})
	pli, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.PictureLossIndication{SenderSSRC: 9, MediaSSRC: ssrc}})
	queue := [][]byte{only, pli}
	// The reader below hands back the attributes it is given, as pion's
	// do: packets parsed into them for one compound must not be taken for
	// the next.
	r2 := f.BindRTCPReader(interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n := copy(b, queue[0])
		queue = queue[1:]
		return n, a, nil
	}))
	buf := make([]byte, 1500)
	n, attr, err := r2.Read(buf, interceptor.Attributes{})
	if err != nil {
		t.Fatal(err)
	}
	// What the readers after the filter parse from the attributes.
	if pkts, err := attr.GetRTCPPackets(buf[:n]); err != nil || len(pkts) != 1 {
		t.Errorf("the attributes after a NACK with nothing left hold %v, %v; want the PLI that came next", pkts, err)
	} else if _, ok := pkts[0].(*rtcp.PictureLossIndication); !ok {
		t.Errorf("the attributes after a NACK with nothing left hold a %T, want the PLI that came next", pkts[0])
	}
	if pkts, err := rtcp.Unmarshal(buf[:n]); err != nil || len(pkts) != 1 {
		t.Errorf("after a NACK with nothing left: %v, %v; want the PLI that came next", pkts, err)
	} else if _, ok := pkts[0].(*rtcp.PictureLossIndication); !ok {
		t.Errorf("after a NACK with nothing left: %T, want the PLI that came next", pkts[0])
	}
	dropped-- // the NACK just swallowed
	if dropped != 2+1+1 {
		t.Errorf("%d sequence numbers counted as not sent again, want 4", dropped)
	}
	f.UnbindLocalStream(&interceptor.StreamInfo{SSRC: ssrc})
	check("after the stream ends", read(ssrc, 10), 10)
}
