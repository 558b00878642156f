package main

import "golang.org/x/sys/unix"

// monotonicMicros reads CLOCK_MONOTONIC in microseconds, as systemd's
// MONOTONIC_USEC wants.
func monotonicMicros() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return int64(ts.Sec)*1_000_000 + int64(ts.Nsec)/1_000 // Timespec fields are 32-bit on 32-bit platforms
}
