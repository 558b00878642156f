package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

// BenchmarkDownTrackWrite is the SFU's own work per forwarded packet
// (layer check, SSRC/sequence/timestamp/picture id rewrite, header
// build), before pion's interceptors and SRTP: one VP8 packet of 1,100
// bytes to one subscriber.
func BenchmarkDownTrackWrite(b *testing.B) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	d, _, _ := testDownTrack(clock)
	d.writer = writerFunc(func(*rtp.Header, []byte) {})
	d.setTarget(0)
	pkt := vp8Packet(1, 1, 1, true)
	pkt.Payload = append(pkt.Payload, make([]byte, 1100)...)
	d.write(0, pkt, true, nil)
	b.SetBytes(int64(len(pkt.Payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		pkt.SequenceNumber = uint16(i + 2)
		pkt.Timestamp = uint32(i) * 3000
		d.write(0, pkt, false, nil)
	}
}
