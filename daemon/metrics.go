package daemon

import (
	"net/http"
	"regexp"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/icebox-project/icebox/internal/connlimit"
	"github.com/icebox-project/icebox/internal/mintlimit"
	"github.com/icebox-project/icebox/signaling"
	"github.com/icebox-project/icebox/turnsrv"
	"github.com/icebox-project/icebox/turnsrv/udprelay"
	"github.com/icebox-project/icebox/web"
)

// collector exposes turnsrv and signaling counters in the Prometheus text
// format. It reads the live counters at scrape time, so the packet path
// only does atomic adds.
type collector struct {
	turn    *turnsrv.Server
	sig     *signaling.Server
	minting *mintlimit.Limiter
	version string
	// auditFailures is the last self-audit's failure count; -1 until one
	// has run, and the gauge is left out meanwhile.
	auditFailures *atomic.Int64
	// http counts the refusals of the HTTP listeners not shared with
	// TURN.
	http *connlimit.Stats
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("icebox_"+name, help, labels, nil)
}

var (
	descBuild       = desc("build_info", "Build information; the value is 1.", "version", "goversion")
	descAllocActive = desc("turn_allocations_active", "Live TURN allocations.")
	descAllocTotal  = desc("turn_allocations_created_total", "TURN allocations created.")
	descRefusals    = desc("turn_allocation_refusals_total", "Allocate requests refused, by reason: quota (allocations per user, in total or per client address), quota_ipv6_aggregate (per IPv6 aggregate prefix: ipv6_aggregate_prefix, turn.max_allocations_per_ip × ipv6_aggregate_factor).", "reason")
	descAuthFail    = desc("turn_auth_failures_total", "TURN requests that failed authentication, by reason.", "reason")
	descPeerDenied  = desc("turn_peer_denials_total", "CreatePermission and ChannelBind requests refused by the peer filter (403).")
	descPerms       = desc("turn_permissions_active", "Live TURN permissions.")
	descChannels    = desc("turn_channel_bindings_active", "Live TURN channel bindings.")
	descPackets     = desc("turn_relayed_packets_total", "Datagrams on relayed transport addresses, by direction.", "direction")
	descBytes       = desc("turn_relayed_bytes_total", "UDP payload bytes on relayed transport addresses, by direction.", "direction")
	descDropped     = desc("turn_dropped_packets_total", "Datagrams dropped: over their allocation's bitrate cap (reason bitrate, direction to_peer or from_peer), past a full queue for the control plane (reason control_queue, direction from_client), neither STUN nor ChannelData of an allocation (reason not_stun, direction from_client), sent to a peer the filter refuses, such as a non-relay port of the server's own address (reason peer_denied, direction to_peer), or dropped at a full socket send buffer, since the relay never waits for room (reason send_buffer, direction to_peer or from_peer).", "direction", "reason")
	descTCPConns    = desc("turn_tcp_connections", "Open TURN connections over TCP and TLS.")
	descTCPRefused  = desc("turn_tcp_refused_total", "TURN TCP and TLS connections closed as soon as they were accepted (on the port TURN shares with HTTP: or once told apart, HTTP ones too), by reason: per_ip or total (turn.max_tcp_connections_per_ip, turn.max_tcp_connections), per_ipv6_aggregate (per IPv6 aggregate prefix: ipv6_aggregate_prefix, turn.max_tcp_connections_per_ip × ipv6_aggregate_factor), fd_limit (shed while out of file descriptors).", "reason")
	descTCPAccept   = desc("turn_tcp_accept_errors_total", "Failed accepts on TURN TCP and TLS listeners (such as EMFILE), each retried.")
	descTCPClosed   = desc("turn_tcp_closed_total", "TURN TCP and TLS connections closed by a deadline, by reason: first_message_timeout (no STUN message or TLS handshake in time) or no_allocation.", "reason")
	descShared      = desc("shared_connections_total", "Connections to the listener TURN shares with HTTP, by outcome: turn, http or ice (ICE-TCP for the SFU; told apart by ALPN or first bytes), ice_bad_frame (ICE-TCP closed later at a frame that is no STUN, DTLS or RTP), tls_failed (the TLS handshake failed), silent (nothing to tell them apart by in time, or the client left), neither (first bytes of neither protocol), evicted (closed at the total cap to make room for a fresh one: not done with TLS, or idle HTTP, for longest).", "outcome")
	descHTTPConns   = desc("http_connections", "Open connections to the HTTP listeners not shared with TURN (page, redirect, metrics).")
	descHTTPRefused = desc("http_refused_total", "Connections to the HTTP listeners not shared with TURN closed as soon as they were accepted, by reason: per_ip or total (turn.max_tcp_connections_per_ip, turn.max_tcp_connections), fd_limit (shed while out of file descriptors); or closed to make room at the total cap, new or idle for longest (evicted).", "reason")
	descHTTPAccept  = desc("http_accept_errors_total", "Failed accepts on the HTTP listeners not shared with TURN (such as EMFILE), each retried.")
	descWSConns     = desc("ws_connections", "Open signaling WebSocket connections.")
	descWSRefused   = desc("ws_refused_total", "Signaling WebSocket upgrades refused (429), by reason: per_ip (signaling.max_connections_per_ip), per_ipv6_aggregate (per IPv6 aggregate prefix: ipv6_aggregate_prefix, signaling.max_connections_per_ip × ipv6_aggregate_factor).", "reason")
	descRooms       = desc("signaling_rooms", "Rooms with at least one peer.")
	descPeers       = desc("signaling_peers", "Peers joined to rooms.")
	descMessages    = desc("signaling_messages_total", "Inbound signaling messages, by type.", "type")
	descErrors      = desc("signaling_errors_total", "Signaling errors sent, by code.", "code")
	descQueued      = desc("signaling_queued_bytes", "Bytes in signaling outbound queues: state=live for open connections (at most signaling.MaxServerQueuedBytes, 32 MiB), state=suspended for peers waiting for a resume (at most signaling.MaxServerHeldBytes, 16 MiB).", "state")
	descHeldDropped = desc("signaling_held_signals_dropped_total", "Signals dropped, oldest first, from suspended peers' queues to keep them within their byte bounds; each local sender is told (error signal-dropped).")
	descAudit       = desc("audit_failures", "Checks of the last self-audit (icebox audit against this server, at start-up and after each reload, without the idle-TCP and certificate checks) that failed; absent until one has run.")
	descCredLimited = desc("credentials_rate_limited_total", "TURN credentials refused by the per-client minting limit, by source: page (call page loads), ws (joins and refreshes), api (/api/v1/ice-servers); those refused by the IPv6 aggregate's bucket included.", "source")
	descPerReceive  = desc("turn_relay_datagrams_per_receive", "Datagrams per receive call (recvmmsg) of the UDP relay loops that returned any, after UDP GRO's coalesced reads are split, by direction: from_client (listener sockets) or from_peer (relay sockets).", "direction")
	descPerSend     = desc("turn_relay_datagrams_per_send", "Datagrams per send call (sendmmsg) of the UDP relay loops, by direction: to_peer or to_client.", "direction")
	descGSORuns     = desc("turn_relay_gso_runs_per_send", "Messages per send call (sendmmsg) of the UDP relay loops that carried a run of datagrams as one UDP_SEGMENT (GSO) send, by direction: to_peer or to_client.", "direction")
	descCredLimAgg  = desc("credentials_rate_limited_ipv6_aggregate_total", "Those of credentials_rate_limited_total refused by the bucket of the client's IPv6 aggregate prefix (ipv6_aggregate_prefix; rate and burst × ipv6_aggregate_factor), by source.", "source")
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBuild, descAllocActive, descAllocTotal, descRefusals, descAuthFail,
		descPeerDenied, descPerms, descChannels, descPackets, descBytes, descDropped,
		descTCPConns, descTCPRefused, descTCPAccept, descTCPClosed, descShared, descHTTPConns, descHTTPRefused, descHTTPAccept,
		descWSConns, descWSRefused, descRooms, descPeers,
		descMessages, descErrors, descQueued, descHeldDropped, descCredLimited, descCredLimAgg, descAudit,
		descPerReceive, descPerSend, descGSORuns} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descBuild, 1, c.version, runtime.Version())
	st := c.turn.Stats()
	gauge(descAllocActive, st.AllocationsActive.Load())
	counter(descAllocTotal, st.AllocationsCreated.Load())
	quotaAgg := st.QuotaRefusedIPv6Aggregate.Load()
	counter(descRefusals, st.QuotaRefusals.Load()-quotaAgg, "quota")
	counter(descRefusals, quotaAgg, "quota_ipv6_aggregate")
	for reason, n := range st.AuthFailures() {
		counter(descAuthFail, n, reason)
	}
	counter(descPeerDenied, st.PeerDenials.Load())
	gauge(descPerms, st.PermissionsActive.Load())
	gauge(descChannels, st.ChannelBindingsActive.Load())
	counter(descPackets, st.PacketsToPeers.Load(), "to_peer")
	counter(descPackets, st.PacketsFromPeers.Load(), "from_peer")
	counter(descBytes, st.BytesToPeers.Load(), "to_peer")
	counter(descBytes, st.BytesFromPeers.Load(), "from_peer")
	counter(descDropped, st.DroppedToPeers.Load(), "to_peer", "bitrate")
	counter(descDropped, st.DroppedFromPeers.Load(), "from_peer", "bitrate")
	counter(descDropped, st.DroppedControl.Load(), "from_client", "control_queue")
	counter(descDropped, st.DroppedNotSTUN.Load(), "from_client", "not_stun")
	counter(descDropped, st.DroppedPeerDenied.Load(), "to_peer", "peer_denied")
	counter(descDropped, st.DroppedSendBufferToPeers.Load(), "to_peer", "send_buffer")
	counter(descDropped, st.DroppedSendBufferToClients.Load(), "from_peer", "send_buffer")
	histogram := func(d *prometheus.Desc, h *udprelay.Histogram, direction string) {
		count, sum, buckets := h.Snapshot()
		ch <- prometheus.MustNewConstHistogram(d, count, sum, buckets, direction)
	}
	occ := &st.Occupancy
	histogram(descPerReceive, &occ.ReceivedFromClients, "from_client")
	histogram(descPerReceive, &occ.ReceivedFromPeers, "from_peer")
	histogram(descPerSend, &occ.SentToPeers, "to_peer")
	histogram(descPerSend, &occ.SentToClients, "to_client")
	histogram(descGSORuns, &occ.GSORunsToPeers, "to_peer")
	histogram(descGSORuns, &occ.GSORunsToClients, "to_client")
	gauge(descTCPConns, st.TCPConnectionsOpen.Load())
	counter(descTCPRefused, st.TCPRefusedPerIP.Load(), "per_ip")
	counter(descTCPRefused, st.TCPRefusedTotal.Load(), "total")
	counter(descTCPRefused, st.TCPRefusedPerIPv6Aggregate.Load(), "per_ipv6_aggregate")
	counter(descTCPRefused, st.TCPRefusedFDLimit.Load(), "fd_limit")
	counter(descTCPAccept, st.TCPAcceptErrors.Load())
	counter(descTCPClosed, st.TCPClosedFirstMessage.Load(), "first_message_timeout")
	counter(descTCPClosed, st.TCPClosedBadFrame.Load(), "bad_frame")
	counter(descTCPClosed, st.TCPClosedNoAllocation.Load(), "no_allocation")
	counter(descShared, st.SharedTURN.Load(), "turn")
	counter(descShared, st.SharedHTTP.Load(), "http")
	counter(descShared, st.SharedTLSFailed.Load(), "tls_failed")
	counter(descShared, st.SharedSilent.Load(), "silent")
	counter(descShared, st.SharedNeither.Load(), "neither")
	counter(descShared, st.SharedEvicted.Load(), "evicted")
	counter(descShared, st.SharedICE.Load(), "ice")
	counter(descShared, st.ICETCPClosedBadFrame.Load(), "ice_bad_frame")
	if h := c.http; h != nil {
		gauge(descHTTPConns, h.Open.Load())
		counter(descHTTPRefused, h.RefusedPerIP.Load(), "per_ip")
		counter(descHTTPRefused, h.RefusedTotal.Load(), "total")
		counter(descHTTPRefused, h.RefusedPerIPv6Aggregate.Load(), "per_ipv6_aggregate")
		counter(descHTTPRefused, h.RefusedFDLimit.Load(), "fd_limit")
		counter(descHTTPRefused, h.Evicted.Load(), "evicted")
		counter(descHTTPAccept, h.AcceptErrors.Load())
	}
	conns, rooms, peers := c.sig.Counts()
	gauge(descWSConns, int64(conns))
	wsRefused := c.sig.Stats().Refused()
	for _, reason := range []string{signaling.RefusedPerIP, signaling.RefusedPerIPv6Aggregate} {
		counter(descWSRefused, wsRefused[reason], reason)
	}
	gauge(descRooms, int64(rooms))
	gauge(descPeers, int64(peers))
	live, held, dropped := c.sig.QueuedBytes()
	gauge(descQueued, live, "live")
	gauge(descQueued, held, "suspended")
	counter(descHeldDropped, dropped)
	for typ, n := range c.sig.Stats().Messages() {
		counter(descMessages, n, typ)
	}
	for code, n := range c.sig.Stats().Errors() {
		counter(descErrors, n, code)
	}
	refused := c.minting.Refused()
	refusedAgg := c.minting.RefusedIPv6Aggregate()
	for _, src := range mintlimit.Sources {
		counter(descCredLimited, refused[src], src)
		counter(descCredLimAgg, refusedAgg[src], src)
	}
	if n := c.auditFailures.Load(); n >= 0 {
		gauge(descAudit, n)
	}
}

// metricsHandler serves /metrics (Prometheus text format) and /healthz.
func metricsHandler(turn *turnsrv.Server, sig *signaling.Server, minting *mintlimit.Limiter, version string, auditFailures *atomic.Int64, httpStats *connlimit.Stats, extra ...prometheus.Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(extra...)
	reg.MustRegister(
		&collector{turn: turn, sig: sig, minting: minting, version: version, auditFailures: auditFailures, http: httpStats},
		// go_gc_heap_live_bytes as well: the heap that survived the last
		// collection, which a leak raises and churn does not.
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
			collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)})),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /healthz", web.HealthHandler(func() error { return turn.Healthy(2 * time.Second) }))
	return mux
}
