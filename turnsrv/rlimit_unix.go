//go:build unix

package turnsrv

import "syscall"

// fdLimit is the soft RLIMIT_NOFILE: how many file descriptors the
// process may hold (Go raises it to the hard limit at start-up).
func fdLimit() (uint64, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	return uint64(r.Cur), true //nolint:unconvert // int64 on some platforms.
}
