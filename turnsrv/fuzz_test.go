package turnsrv

import (
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// FuzzListeners throws arbitrary bytes at a running server's UDP and TCP
// listeners; after each input the server must still answer a STUN
// Binding request.
func FuzzListeners(f *testing.F) {
	seed := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	f.Add(seed.Raw)
	alloc := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest),
		stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}},
		stun.NewUsername("1:x"), stun.NewRealm(realm), stun.NewNonce("n"), stun.MessageIntegrity("k"))
	f.Add(alloc.Raw)
	f.Add([]byte{0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4})             // ChannelData
	f.Add([]byte{0x00, 0x01, 0xff, 0xff, 0x21, 0x12, 0xa4, 0x42}) // huge length
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))

	s := startServer(f, nil)
	probe, err := net.Dial("udp4", s.udp)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := net.Dial("udp4", s.udp)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = u.Write(data)
		u.Close()
		c, err := net.DialTimeout("tcp", s.tcp, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		_, _ = c.Write(data)
		c.Close()
		roundTrip(t, probe, stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint))
	})
}
