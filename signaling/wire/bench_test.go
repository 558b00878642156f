package wire

import (
	"encoding/json"
	"testing"
)

// candidate is a relayed ICE candidate's data, the most frequent signal.
var candidate = json.RawMessage(`{"candidate":{"candidate":"candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host","sdpMid":"0","sdpMLineIndex":0}}`)

// BenchmarkMarshalSignal is the server's encoding of each relayed
// signal, by Marshal and, beside it, the struct with its own "type"
// member the server encoded before (flatSignal).
func BenchmarkMarshalSignal(b *testing.B) {
	type flatSignal struct {
		Type string          `json:"type"`
		From string          `json:"from"`
		Data json.RawMessage `json:"data"`
	}
	b.Run("wire.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Marshal(&Signal{From: "A1b2C3d4E5f6G7h8", Data: candidate}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("flat struct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(flatSignal{Type: TypeSignal, From: "A1b2C3d4E5f6G7h8", Data: candidate}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
