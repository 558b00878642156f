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
	}
	for _, tt := range tests {
		if got := Valid(tt.name); got != tt.want {
			t.Errorf("Valid(%q): got %v, want %v", tt.name, got, tt.want)
		}
	}
}
