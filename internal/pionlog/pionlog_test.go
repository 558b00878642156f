package pionlog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestClientLoggerWarnsAtDebug: a client logger's warnings are debug
// lines, its errors errors; NewLogger's warnings stay warnings.
func TestClientLoggerWarnsAtDebug(t *testing.T) {
	var buf bytes.Buffer
	f := Factory{Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	f.NewClientLogger("tcpmux").Warnf("Failed to read streaming packet: %s", "EOF")
	f.NewClientLogger("tcpmux").Errorf("mux broken")
	f.NewLogger("ice").Warn("operator warning")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{"level=DEBUG", "level=ERROR", "level=WARN"}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d: %q, want %s", i, lines[i], w)
		}
	}
}
