package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/sfu"
	"github.com/icebox-project/icebox/signaling"
	"github.com/icebox-project/icebox/web"
)

// sfuPart is the embedded SFU of a daemon with an sfu: section.
type sfuPart struct {
	sfu      *sfu.SFU
	conn     *net.UDPConn
	tcpPort  int // of the ICE-TCP candidates; 0 without ICE-TCP
	estimate prometheus.Histogram
}

// openSFUSocket binds sfu.listen: before TURN is built, whose peer filter
// opens the SFU's port on the own addresses (turnsrv.Config.SFUPort).
func openSFUSocket(p *config.Parsed) (*net.UDPConn, error) {
	if p.SFU == nil {
		return nil, nil
	}
	ap, err := net.ResolveUDPAddr("udp", p.SFU.Listen)
	if err != nil {
		return nil, fmt.Errorf("sfu.listen %q: %w", p.SFU.Listen, err)
	}
	conn, err := net.ListenUDP("udp", ap)
	if err != nil {
		return nil, fmt.Errorf("sfu.listen %q: %w", p.SFU.Listen, err)
	}
	return conn, nil
}

// sfuAddrs is where the SFU socket conn answers, for the TURN peer
// filter: its port, and its address unless it is bound to all of them.
func sfuAddrs(conn *net.UDPConn) (uint16, []netip.Addr) {
	if conn == nil {
		return 0, nil
	}
	ap := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	if ap.Addr().IsUnspecified() {
		return ap.Port(), nil
	}
	return ap.Port(), []netip.Addr{ap.Addr()}
}

// newSFUPart builds the SFU on conn, and on iceTCP (the ICE-TCP
// connections of the port TURN shares with HTTPS) unless that is nil; its
// host candidates name public, the advertised address
// (internal/advertise's), unless that is unspecified, at conn's port and
// at the shared port as bound.
func newSFUPart(cfg *config.Config, conn *net.UDPConn, iceTCP net.Listener, public netip.Addr, log *slog.Logger) (*sfuPart, error) {
	if conn == nil {
		return nil, nil
	}
	part := &sfuPart{conn: conn, estimate: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "icebox_sfu_estimated_bitrate_bits",
		Help:    "Subscribers' downlink bandwidth estimates (TWCC with GCC), bit/s, one observation per subscriber per allocation (500 ms).",
		Buckets: prometheus.ExponentialBuckets(100_000, 2, 9), // 100 kbit/s to 25.6 Mbit/s
	})}
	bound := conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
	c := sfu.Config{
		UDP:              conn,
		TCP:              iceTCP,
		IncludeLoopback:  bound.IsLoopback() || public.IsLoopback(),
		Logger:           log,
		EstimateObserved: part.estimate.Observe,
		Limits: sfu.Limits{
			ParticipantsPerRoom: cfg.SFU.MaxPeersPerRoom,
			PublishersPerRoom:   cfg.SFU.MaxPeersPerRoom,
			Participants:        cfg.SFU.MaxParticipants,
			Publishers:          cfg.SFU.MaxParticipants,
			PublishBitrate:      cfg.SFU.PublishBitrate,
		},
	}
	if public.IsValid() && !public.IsUnspecified() && !public.IsLoopback() {
		c.PublicIPs = []string{public.String()}
	}
	s, err := sfu.New(c)
	if err != nil {
		return nil, err
	}
	part.sfu = s
	tcp := "off"
	if iceTCP != nil {
		tcp = iceTCP.Addr().String()
		if a, ok := iceTCP.Addr().(*net.TCPAddr); ok {
			part.tcpPort = a.Port
		}
	}
	log.Info("sfu media", "listen", conn.LocalAddr().String(), "ice_tcp", tcp, "candidates", c.PublicIPs)
	return part, nil
}

// signalingConfig puts the rooms whose media is sfu on the SFU, and
// moves auto rooms between mesh and SFU by their size. A room's mode is
// read from the current configuration when it opens; mesh_max and
// mesh_return_after at start.
func (p *sfuPart) signalingConfig(d *Daemon, cfg *config.Config) *signaling.SFUConfig {
	if p == nil {
		return nil
	}
	return &signaling.SFUConfig{
		Server:          p.sfu,
		MaxPeersPerRoom: cfg.SFU.MaxPeersPerRoom,
		MeshMax:         cfg.Signaling.MeshMax,
		MeshReturn:      cfg.Signaling.MeshReturnAfter,
		Media: func(room string) string {
			switch d.rooms.Load().RoomMedia(room) {
			case config.MediaSFU:
				return signaling.MediaSFU
			case config.MediaAuto:
				return signaling.MediaAuto
			}
			return signaling.MediaMesh
		},
	}
}

// check is /check's test of the SFU's media sockets (sfu.SFU.Probe); nil
// without an SFU.
func (p *sfuPart) check() *web.SFUCheck {
	if p == nil {
		return nil
	}
	return &web.SFUCheck{
		UDPPort: p.conn.LocalAddr().(*net.UDPAddr).Port,
		TCPPort: p.tcpPort,
		Probe: func(ctx context.Context, offer string) (string, error) {
			answer, err := p.sfu.Probe(ctx, offer)
			switch {
			case errors.Is(err, sfu.ErrBadSignal), errors.Is(err, sfu.ErrTooLarge):
				return "", fmt.Errorf("%w: %w", web.ErrProbeRefused, err)
			case errors.Is(err, sfu.ErrProbeBusy), errors.Is(err, sfu.ErrClosed):
				return "", fmt.Errorf("%w: %w", web.ErrProbeBusy, err)
			}
			return answer, err
		},
	}
}

func (p *sfuPart) Close() error {
	if p == nil {
		return nil
	}
	return p.sfu.Close()
}

// collectors are the icebox_sfu_* metrics; none without an SFU.
func (p *sfuPart) collectors() []prometheus.Collector {
	if p == nil {
		return nil
	}
	return []prometheus.Collector{sfuCollector{p.sfu}, p.estimate}
}

var (
	descSFURooms    = desc("sfu_rooms", "Rooms open on the SFU.")
	descSFUParts    = desc("sfu_participants", "Participants connected to the SFU.")
	descSFUTracks   = desc("sfu_tracks", "Tracks published to the SFU.")
	descSFUBytes    = desc("sfu_forwarded_bytes_total", "RTP payload bytes the SFU forwarded to subscribers, by kind (audio, video).", "kind")
	descSFUPackets  = desc("sfu_forwarded_packets_total", "RTP packets the SFU forwarded to subscribers, by kind (audio, video).", "kind")
	descSFUProbe    = desc("sfu_probe_bytes_total", "RTP payload bytes the SFU sent again as probes, so that subscribers' bandwidth estimates could grow to the layers they asked for (not counted as forwarded).")
	descSFUSwitches = desc("sfu_layer_switches_total", "Down-tracks moved from one simulcast layer to another (on a keyframe).")
	descSFUNACKs    = desc("sfu_nacks_total", "NACKs (RFC 4585) from subscribers, answered from the packet cache.")
	descSFURefused  = desc("sfu_resends_refused_total", "Packets subscribers' NACKs asked for that the SFU did not send again: sent again under 200 ms before, 3 times already, or older than its cache.")
	descSFUPLIs     = desc("sfu_plis_total", "PLIs (RFC 4585) the SFU sent publishers, at most one per 500 ms per layer.")
	descSFUDrops    = desc("sfu_forward_queue_drops_total", "Packets from publishers dropped because their layer's forwarder was 512 packets behind its reader.")
)

type sfuCollector struct{ s *sfu.SFU }

func (c sfuCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSFURooms, descSFUParts, descSFUTracks, descSFUBytes, descSFUPackets, descSFUProbe, descSFUSwitches, descSFUNACKs, descSFURefused, descSFUPLIs, descSFUDrops} {
		ch <- d
	}
}

func (c sfuCollector) Collect(ch chan<- prometheus.Metric) {
	rooms, parts, tracks := c.s.Counts()
	st := c.s.Stats()
	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descSFURooms, rooms)
	gauge(descSFUParts, parts)
	gauge(descSFUTracks, tracks)
	counter(descSFUBytes, st.ForwardedAudioBytes.Load(), "audio")
	counter(descSFUBytes, st.ForwardedVideoBytes.Load(), "video")
	counter(descSFUPackets, st.ForwardedAudioPackets.Load(), "audio")
	counter(descSFUPackets, st.ForwardedVideoPackets.Load(), "video")
	counter(descSFUProbe, st.ProbeBytes.Load())
	counter(descSFUSwitches, st.LayerSwitches.Load())
	counter(descSFUNACKs, st.NACKs.Load())
	counter(descSFURefused, st.ResendsRefused.Load())
	counter(descSFUPLIs, st.PLIs.Load())
	counter(descSFUDrops, st.ForwardQueueDrops.Load())
}
