package sfu

import (
	"strings"
	"testing"
)

// FuzzHandleSignal: whatever a client sends to "sfu", HandleSignal
// returns (an error or nil) without panicking, and the participant keeps
// taking signals.
func FuzzHandleSignal(f *testing.F) {
	offer := `v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11\r\na=setup:actpass\r\na=rtpmap:96 VP8/90000\r\na=rid:q send\r\na=simulcast:send q\r\n`
	for _, seed := range []string{
		`{"sdp":{"type":"offer","sdp":"` + offer + `"},"sources":{"0":"screen"}}`,
		`{"sdp":{"type":"answer","sdp":"v=0\r\n"}}`,
		`{"candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0"}}`,
		`{"candidate":{"candidate":""}}`,
		`{"sdp":null,"candidate":null}`,
		`{"sources":{"` + strings.Repeat("m", 40) + `":"camera"}}`,
		`[]`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	s := newTestSFU(f, Config{})
	p, err := s.Join("fuzz", "p", Events{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = p.Close() })
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = p.HandleSignal(data)
		_ = p.RequestLayer(string(data), "f")
	})
}
