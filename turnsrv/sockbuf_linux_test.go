//go:build linux && (amd64 || arm64)

package turnsrv

import (
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/icebox-project/icebox/turnsrv/internal/sockbuf"
)

// TestStartLogsSocketBuffers: a starting server says once what socket
// buffers its listener and relay sockets asked for and were granted (the
// kernel caps them without an error), not once per socket or allocation.
func TestStartLogsSocketBuffers(t *testing.T) {
	log := &lockedBuffer{}
	startServer(t, func(c *Config) {
		c.UDPSockets = 2
		c.Logger = slog.New(slog.NewTextHandler(log, nil))
	})
	asked := "recv_asked=" + strconv.Itoa(sockbuf.Size)
	for _, what := range []string{`sockets="turn listener"`, `sockets="turn relay"`} {
		var lines []string
		for _, l := range strings.Split(log.String(), "\n") {
			if strings.Contains(l, what) {
				lines = append(lines, l)
			}
		}
		if len(lines) != 1 {
			t.Errorf("%s: got %d lines, want 1:\n%s", what, len(lines), log)
			continue
		}
		if !strings.Contains(lines[0], asked) || !strings.Contains(lines[0], "recv_granted=") {
			t.Errorf("%s: %q lacks %s or recv_granted", what, lines[0], asked)
		}
	}
}
