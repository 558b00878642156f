package config_test

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/daemon"
)

// TestUnitStopTimeoutCoversGrace reads the shipped systemd unit and checks
// that its TimeoutStopSec outlasts the longest stop icebox may take:
// daemon.ShutdownTimeout (signaling, cluster and HTTP drain) followed by
// the largest shutdown_grace config accepts. A shorter TimeoutStopSec
// has systemd SIGKILL an icebox still inside the grace it was given.
func TestUnitStopTimeoutCoversGrace(t *testing.T) {
	f, err := os.Open("../systemd/icebox.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stop string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "TimeoutStopSec="); ok {
			stop = v
		}
	}
	if stop == "" {
		t.Fatal("systemd/icebox.service sets no TimeoutStopSec (systemd's default is 90s)")
	}
	got, err := unitSeconds(stop)
	if err != nil {
		t.Fatalf("TimeoutStopSec=%s: %v", stop, err)
	}
	need := daemon.ShutdownTimeout + config.MaxShutdownGrace
	if got <= need {
		t.Errorf("TimeoutStopSec=%s (%s), want more than ShutdownTimeout %s + MaxShutdownGrace %s = %s",
			stop, got, daemon.ShutdownTimeout, config.MaxShutdownGrace, need)
	}
}

// unitSeconds parses a systemd time span as the unit writes it: a bare
// number of seconds or a Go-style duration ("330s", "5m30s").
func unitSeconds(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}
