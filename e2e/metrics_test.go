package e2e

import (
	"bufio"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape fetches /metrics and returns the samples by their full name with
// labels, e.g. `icebox_turn_relayed_bytes_total{direction="to_peer"}`.
func scrape(t *testing.T, ib *icebox) map[string]float64 {
	t.Helper()
	return scrapeAddr(t, ib.MetricsAddr().String())
}

// scrapeAddr is scrape for the metrics listener at addr (host:port).
func scrapeAddr(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want the Prometheus text format", ct)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsAfterRelayedCall: after a relayed call /metrics shows relayed
// bytes both ways; after hang-up, active allocations are back at 0.
func TestMetricsAfterRelayedCall(t *testing.T) {
	lane(t, laneLight)
	ib := startIcebox(t, nil)
	room := ib.newRoom(t)
	a := newPionPeer(t, ib, room, "alice")
	b := newPionPeer(t, ib, room, "bob")
	go a.serve()
	go b.serve()
	b.offer()
	dcB, dcA := b.openChannel(), a.openChannel()
	payload := strings.Repeat("x", 1000)
	for i := 0; i < 20; i++ {
		if err := dcB.SendText(payload); err != nil {
			t.Fatal(err)
		}
		a.expectMessage(payload)
		if err := dcA.SendText(payload); err != nil {
			t.Fatal(err)
		}
		b.expectMessage(payload)
	}
	m := scrape(t, ib)
	for _, name := range []string{
		`icebox_turn_relayed_bytes_total{direction="to_peer"}`,
		`icebox_turn_relayed_bytes_total{direction="from_peer"}`,
		`icebox_turn_relayed_packets_total{direction="to_peer"}`,
		`icebox_turn_allocations_active`, `icebox_turn_permissions_active`,
		`icebox_ws_connections`, `icebox_signaling_peers`,
		`icebox_signaling_messages_total{type="signal"}`,
		`icebox_turn_relay_datagrams_per_receive_count{direction="from_client"}`,
		`icebox_turn_relay_datagrams_per_send_count{direction="to_peer"}`,
	} {
		if m[name] <= 0 {
			t.Errorf("%s = %v during a relayed call, want > 0", name, m[name])
		}
	}
	// No bitrate cap is set, so nothing was dropped, but the series exist.
	for _, name := range []string{
		`icebox_turn_dropped_packets_total{direction="to_peer",reason="bitrate"}`,
		`icebox_turn_dropped_packets_total{direction="from_peer",reason="bitrate"}`,
	} {
		if v, ok := m[name]; !ok || v != 0 {
			t.Errorf("%s = %v (present %v), want 0 without a cap", name, v, ok)
		}
	}
	// No peer was suspended, so nothing was held or dropped, but the
	// series exist.
	for _, name := range []string{
		`icebox_signaling_queued_bytes{state="suspended"}`, `icebox_signaling_held_signals_dropped_total`,
	} {
		if v, ok := m[name]; !ok || v != 0 {
			t.Errorf("%s = %v (present %v), want 0 with no peer suspended", name, v, ok)
		}
	}
	// Nothing pressed the TURN TCP listener, but its series exist.
	for _, name := range []string{
		`icebox_turn_tcp_refused_total{reason="per_ip"}`, `icebox_turn_tcp_refused_total{reason="total"}`,
		`icebox_turn_tcp_refused_total{reason="fd_limit"}`, `icebox_turn_tcp_accept_errors_total`,
		`icebox_turn_tcp_closed_total{reason="first_message_timeout"}`,
		`icebox_turn_tcp_closed_total{reason="no_allocation"}`,
	} {
		if v, ok := m[name]; !ok || v != 0 {
			t.Errorf("%s = %v (present %v), want 0", name, v, ok)
		}
	}
	if _, ok := m[`icebox_turn_tcp_connections`]; !ok {
		t.Error("no icebox_turn_tcp_connections")
	}
	if m[`icebox_turn_relayed_bytes_total{direction="to_peer"}`] < 40*1000 {
		t.Errorf("relayed bytes to peers %v, want at least the 40 kB of data sent", m[`icebox_turn_relayed_bytes_total{direction="to_peer"}`])
	}
	// The daemon runs in this process, so it reports this Go version.
	if m[`icebox_build_info{goversion="`+runtime.Version()+`",version="e2e"}`] != 1 {
		t.Errorf("no icebox_build_info for version e2e")
	}

	// Hang up: both peers close; their TURN allocations are released.
	a.pc.Close()
	b.pc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m = scrape(t, ib)
		if m[`icebox_turn_allocations_active`] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("icebox_turn_allocations_active = %v 10s after hang-up, want 0", m[`icebox_turn_allocations_active`])
		}
		time.Sleep(100 * time.Millisecond)
	}
	if m[`icebox_turn_allocations_created_total`] < 2 {
		t.Errorf("allocations created %v, want at least 2", m[`icebox_turn_allocations_created_total`])
	}
}
