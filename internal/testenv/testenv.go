// Package testenv is for tests that need something outside Go: a program
// (chromium, coturn's turnutils_*, prlimit, systemd-analyze, make,
// unshare, ip) or root. Where it is missing they skip, except when the
// environment variable CI is set: .ci/run installs all of it, so there a
// missing tool is a broken set-up and the test fails rather than pass
// without running.
package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// CI reports whether the environment variable CI is set (non-empty).
func CI() bool { return os.Getenv("CI") != "" }

// Tool returns the path of the first of names found in PATH. When none
// is, it skips the test, saying how to get one (install, such as "apt-get
// install coturn"), or with CI set fails it.
func Tool(t testing.TB, install string, names ...string) string {
	t.Helper()
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	Require(t, false, strings.Join(names, " or ")+" is not installed ("+install+")")
	return ""
}

// Require skips the test, giving why, unless ok; with CI set it fails
// it instead.
func Require(t testing.TB, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if CI() {
		t.Fatalf("%s; CI is set, and .ci/run provides it", why)
		return
	}
	t.Skip(why)
}
