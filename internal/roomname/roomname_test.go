package roomname

import (
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"r", true},
		{"Room_1-a", true},
		{strings.Repeat("x", MaxLength), true},
		{"", false},
		{strings.Repeat("x", MaxLength+1), false},
		{"../etc", false},
		{"a b", false},
		{"a/b", false},
		{"é", false},
		{"a?b", false},
		{"a.b", false}, // a host name's dot: config's nodeName replaces it
		{"a*", false},  // NATS wildcards, * and >
		{"a>", false},
		{"a\x00b", false}, // NUL
		{"vm1", true},     // a node name
	}
	for _, tt := range tests {
		if got := Valid(tt.name); got != tt.want {
			t.Errorf("Valid(%q): got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestNameByte(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
		if got := NameByte(byte(c)); got != want {
			t.Errorf("NameByte(%q): got %v, want %v", byte(c), got, want)
		}
	}
}
