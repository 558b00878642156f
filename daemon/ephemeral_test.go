package daemon

import "testing"

func TestEphemeralOverlap(t *testing.T) {
	tests := []struct {
		lo, hi          uint16
		rng, reserved   string
		wantFirst, want int
	}{
		{49152, 65535, "32768\t60999\n", "\n", 49152, 60999 - 49152 + 1},        // Linux defaults
		{49152, 65535, "32768\t60999\n", "49152-65535\n", 0, 0},                 // the shipped sysctl.d entry
		{49152, 65535, "32768\t60999\n", "49152-50000,50002-65535\n", 50001, 1}, // one port left
		{10000, 20000, "32768\t60999\n", "", 0, 0},                              // outside the range
		{60000, 65535, "32768 60999", "60500", 60000, 999},                      // partly
		{49152, 65535, "garbage", "", 0, 0},                                     // unreadable: no claim
	}
	for _, tt := range tests {
		first, n := ephemeralOverlap(tt.lo, tt.hi, tt.rng, tt.reserved)
		if first != tt.wantFirst || n != tt.want {
			t.Errorf("relay %d-%d, ephemeral %q, reserved %q: got %d ports from %d, want %d from %d",
				tt.lo, tt.hi, tt.rng, tt.reserved, n, first, tt.want, tt.wantFirst)
		}
	}
}
