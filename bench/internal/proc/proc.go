// Package proc holds what the benchmarks share: reading a process's
// resource use from Linux's /proc, raising their own file descriptor
// limit, and building the icebox binary they start.
package proc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RSSKiB is the resident set size (VmRSS) of pid in KiB, 0 when unknown.
func RSSKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// CPUSeconds is the user plus system CPU time of pid, in seconds.
func CPUSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: utime and stime are the 12th and 13th (proc(5)).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// RaiseFDLimit lifts the soft open-file limit towards n (up to the hard
// limit); children started afterwards inherit it.
func RaiseFDLimit(n uint64) {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < n {
		lim.Cur = min(n, lim.Max)
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

// IceboxBinary returns binary, or builds ./cmd/icebox into dir when it is
// "" (the benchmarks run from the repository root).
func IceboxBinary(dir, binary string) (string, error) {
	if binary != "" {
		return binary, nil
	}
	binary = filepath.Join(dir, "icebox")
	if out, err := exec.Command("go", "build", "-o", binary, "./cmd/icebox").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return binary, nil
}

var httpLine = regexp.MustCompile(`msg="http listening".* addr=(\S+)`)

// WaitHTTP reads icebox's log from stderr until it names its HTTP address
// (host:port), for up to 15 s. The rest of the log is read and dropped,
// so icebox never blocks on a full pipe.
func WaitHTTP(stderr io.Reader) (string, error) {
	sc := bufio.NewScanner(stderr)
	found := make(chan string, 1)
	go func() {
		for sc.Scan() {
			if m := httpLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case a := <-found:
		return a, nil
	case <-time.After(15 * time.Second):
		return "", fmt.Errorf("icebox did not start")
	}
}
