package daemon

import (
	"fmt"
	"log/slog"
	"runtime"
	"testing"

	"github.com/icebox-project/icebox/config"
)

// TestRelayPlan: turn.udp_sockets sets the sockets per UDP listener and
// the relay loops, one per socket (udp_sockets: 1 runs one loop); 0 means
// one per core.
func TestRelayPlan(t *testing.T) {
	for _, tc := range []struct{ udpSockets, cores, sockets, loops int }{
		{0, 4, 4, 4},
		{1, 4, 1, 1},
		{3, 8, 3, 3},
		{0, 0, 1, 1},
	} {
		sockets, loops := relayPlan(tc.udpSockets, tc.cores)
		if sockets != tc.sockets || loops != tc.loops {
			t.Errorf("relayPlan(%d, %d): got %d sockets, %d loops, want %d, %d",
				tc.udpSockets, tc.cores, sockets, loops, tc.sockets, tc.loops)
		}
	}
}

// TestGOMAXPROCSLeftAlone: a daemon planning its relay for more cores
// than GOMAXPROCS, with as many relay loops, leaves GOMAXPROCS as it was,
// so the runtime's default keeps following a container's CPU limit
// (before, New set it to cores + loops).
func TestGOMAXPROCSLeftAlone(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	cfg, err := config.FromBytes("procs.yaml", []byte(fmt.Sprintf(`public_ip: 127.0.0.1
http:
  listen: "127.0.0.1:0"
turn:
  listen: ["udp://127.0.0.1:0"]
metrics:
  listen: ""
state_dir: %q
`, t.TempDir())))
	if err != nil {
		t.Fatal(err)
	}
	d := serve(t, cfg, Options{Logger: slog.New(slog.DiscardHandler), Cores: before + 2})
	if loops := d.turn.RelayLoops(); loops != before+2 && loops != 0 {
		t.Errorf("%d relay loops, want %d (one per planned core)", loops, before+2)
	}
	if got := runtime.GOMAXPROCS(0); got != before {
		runtime.GOMAXPROCS(before)
		t.Errorf("GOMAXPROCS %d after New, want %d as before", got, before)
	}
}
