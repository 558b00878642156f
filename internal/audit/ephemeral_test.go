package audit

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

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

// TestRelayEphemeralCheck: on this host, a relay range inside the
// kernel's ephemeral range (less its reserved ports) fails the check, one
// below it passes, and without LocalHost the check is skipped.
func TestRelayEphemeralCheck(t *testing.T) {
	rangeText, err := os.ReadFile(ephemeralRangeFile)
	if err != nil {
		t.Skipf("no %s: %v", ephemeralRangeFile, err)
	}
	reservedText, _ := os.ReadFile(reservedPortsFile)
	f := strings.Fields(string(rangeText))
	lo, _ := strconv.Atoi(f[0])
	hi, _ := strconv.Atoi(f[1])
	reserved := parsePortList(string(reservedText))
	free := 0
	for p := lo; p <= hi && free == 0; p++ {
		if !reserved(p) {
			free = p
		}
	}
	for _, tt := range []struct {
		name string
		cfg  Config
		want Status
	}{
		{"not this host", Config{RelayMin: 1000, RelayMax: 1010}, Skip},
		{"below the ephemeral range", Config{LocalHost: true, RelayMin: 1000, RelayMax: 1010}, Pass},
		{"an ephemeral port", Config{LocalHost: true, RelayMin: uint16(free), RelayMax: uint16(free)}, Fail},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want == Fail && free == 0 {
				t.Skip("every ephemeral port is reserved on this host")
			}
			if got := relayEphemeral(tt.cfg); got.Status != tt.want {
				t.Errorf("got %q, want %s", got, tt.want)
			}
		})
	}
}
