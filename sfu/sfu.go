package sfu

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/icebox-project/icebox/internal/pionlog"
)

// SFU holds the rooms of one server and what their peer connections
// share: the media sockets and the codec set.
type SFU struct {
	cfg      Config
	settings webrtc.SettingEngine
	udpMux   ice.UDPMux
	tcpMux   ice.TCPMux

	stats Stats
	// forwardHook, set by tests before any participant joins, runs in a
	// layer's forwarder before each packet goes to the subscribers.
	forwardHook func()

	mu           sync.Mutex
	rooms        map[string]*Room
	participants int
	publishers   int
	probes       probes // probe.go
	closed       bool
}

// Stats are the SFU's counters, read with Load. They back the
// icebox_sfu_* metrics.
type Stats struct {
	// ForwardedAudioBytes and ForwardedVideoBytes count RTP payload bytes
	// written to subscribers.
	ForwardedAudioBytes, ForwardedVideoBytes atomic.Uint64
	// ForwardedAudioPackets and ForwardedVideoPackets count the RTP
	// packets written to subscribers.
	ForwardedAudioPackets, ForwardedVideoPackets atomic.Uint64
	// LayerSwitches counts a down-track moving from one layer to another.
	LayerSwitches atomic.Uint64
	// NACKs counts NACK packets (RFC 4585 §6.2.1) from subscribers.
	NACKs atomic.Uint64
	// ResendsRefused counts packets a subscriber's NACKs asked for that
	// were not sent again: sent again less than 200 ms before, 3 times
	// already, or older than the packet cache (nackfilter.go).
	ResendsRefused atomic.Uint64
	// PLIs counts PLIs (RFC 4585 §6.3.1) sent to publishers.
	PLIs atomic.Uint64
	// ProbeBytes counts the RTP payload bytes of the probe copies sent to
	// let subscribers' bandwidth estimates grow (probe_bwe.go); not
	// counted as forwarded.
	ProbeBytes atomic.Uint64
	// ForwardQueueDrops counts packets from publishers dropped because
	// their layer's forwarder was forwardQueue packets behind the reader.
	ForwardQueueDrops atomic.Uint64
}

// New returns an SFU on cfg. It owns cfg.UDP and cfg.TCP from then on.
func New(cfg Config) (*SFU, error) {
	cfg = cfg.withDefaults()
	s := &SFU{cfg: cfg, rooms: make(map[string]*Room)}
	logs := pionlog.Factory{Log: cfg.Logger}
	se := webrtc.SettingEngine{LoggerFactory: logs}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(cfg.IncludeLoopback)
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if cfg.UDP != nil {
		s.udpMux = webrtc.NewICEUDPMux(logs.NewLogger("udpmux"), cfg.UDP)
		se.SetICEUDPMux(s.udpMux)
	}
	if cfg.TCP != nil {
		s.tcpMux = webrtc.NewICETCPMux(logs.NewClientLogger("tcpmux"), cfg.TCP, 64)
		se.SetICETCPMux(s.tcpMux)
		networks = append(networks, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(networks)
	if len(cfg.PublicIPs) > 0 {
		err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: cfg.PublicIPs, AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode: webrtc.ICEAddressRewriteReplace})
		if err != nil {
			return nil, fmt.Errorf("sfu: public addresses %v: %w", cfg.PublicIPs, err)
		}
	}
	s.settings = se
	return s, nil
}

// Stats returns the SFU's counters.
func (s *SFU) Stats() *Stats { return &s.stats }

// Counts returns the rooms, participants and published tracks now.
func (s *SFU) Counts() (rooms, participants, tracks int) {
	s.mu.Lock()
	list := make([]*Room, 0, len(s.rooms))
	for _, r := range s.rooms {
		list = append(list, r)
	}
	rooms, participants = len(s.rooms), s.participants
	s.mu.Unlock()
	for _, r := range list {
		tracks += r.trackCount()
	}
	return rooms, participants, tracks
}

// Room returns the room named name, opening it if it is not open.
func (s *SFU) Room(name string) (*Room, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	r := s.rooms[name]
	if r == nil {
		r = newRoom(s, name)
		s.rooms[name] = r
	}
	return r, nil
}

// Join adds the participant id to the room named room, opening it if
// needed; see Room.Join.
func (s *SFU) Join(room, id string, ev Events) (*Participant, error) {
	for {
		r, err := s.Room(room)
		if err != nil {
			return nil, err
		}
		p, err := r.Join(id, ev)
		if errors.Is(err, ErrClosed) {
			continue // r emptied as we joined; s.Room opens a new one
		}
		return p, err
	}
}

// roomEmpty forgets r once its last participant left.
func (s *SFU) roomEmpty(r *Room) {
	s.mu.Lock()
	if s.rooms[r.name] == r {
		delete(s.rooms, r.name)
	}
	s.mu.Unlock()
	r.stop()
}

// admit takes one participant place on the server, or says why not.
func (s *SFU) admit() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.participants >= s.cfg.Limits.Participants {
		return fmt.Errorf("%w: the server holds %d participants", ErrRoomFull, s.participants)
	}
	s.participants++
	return nil
}

func (s *SFU) release() {
	s.mu.Lock()
	s.participants--
	s.mu.Unlock()
}

// admitPublisher takes one publisher place on the server.
func (s *SFU) admitPublisher() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.publishers >= s.cfg.Limits.Publishers {
		return fmt.Errorf("%w: the server has %d publishers", ErrPublishLimit, s.publishers)
	}
	s.publishers++
	return nil
}

func (s *SFU) releasePublisher() {
	s.mu.Lock()
	s.publishers--
	s.mu.Unlock()
}

// Close closes every room and the media sockets.
func (s *SFU) Close() error {
	s.mu.Lock()
	s.closed = true
	rooms := s.rooms
	s.rooms = map[string]*Room{}
	s.mu.Unlock()
	for _, r := range rooms {
		r.close()
	}
	s.closeProbes()
	if s.udpMux != nil {
		_ = s.udpMux.Close()
	}
	if s.tcpMux != nil {
		_ = s.tcpMux.Close()
	}
	return nil
}

// newAPI builds the pion API of one participant's peer connection: the
// codecs the SFU forwards (with RTX, RFC 4588), the simulcast and audio level header
// extensions, NACK (generator towards publishers, responder from a packet
// cache towards subscribers), RTCP reports, TWCC feedback for what the
// participant sends and a GCC estimate of what it receives, handed to
// onEstimator.
func (s *SFU) newAPI(onEstimator func(cc.BandwidthEstimator)) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	video := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}}
	codecs := []struct {
		c    webrtc.RTPCodecParameters
		kind webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1;usedtx=1"}, PayloadType: 111}, webrtc.RTPCodecTypeAudio},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: video}, PayloadType: 96}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000, RTCPFeedback: video,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, PayloadType: 102}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=96"}, PayloadType: 97}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=102"}, PayloadType: 103}, webrtc.RTPCodecTypeVideo},
	}
	for _, c := range codecs {
		if err := m.RegisterCodec(c.c, c.kind); err != nil {
			return nil, fmt.Errorf("sfu: register %s: %w", c.c.MimeType, err)
		}
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return nil, fmt.Errorf("sfu: simulcast header extensions: %w", err)
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("sfu: audio level header extension: %w", err)
	}
	// The mid on audio too (simulcast registers it for video): each
	// forwarded packet names its media section (DownTrack.write).
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.SDESMidURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("sfu: mid header extension: %w", err)
	}
	ir := &interceptor.Registry{}
	// Before the NACK responder the defaults add, so that it reads each
	// NACK first.
	ir.Add(&nackFilterFactory{now: s.cfg.Now, dropped: func(n int) { s.stats.ResendsRefused.Add(uint64(n)) }})
	if err := webrtc.RegisterDefaultInterceptorsWithOptions(m, ir,
		webrtc.WithNackResponderOptions(nack.ResponderSize(sendHistory))); err != nil {
		return nil, fmt.Errorf("sfu: interceptors: %w", err)
	}
	bwe, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
		return gcc.NewSendSideBWE(
			gcc.SendSideBWEInitialBitrate(s.cfg.InitialBitrate),
			gcc.SendSideBWEMinBitrate(s.cfg.MinBitrate),
			gcc.SendSideBWEMaxBitrate(s.cfg.MaxBitrate),
			gcc.SendSideBWEPacer(gcc.NewNoOpPacer()),
			gcc.WithLoggerFactory(pionlog.Factory{Log: s.cfg.Logger}),
		)
	})
	if err != nil {
		return nil, fmt.Errorf("sfu: congestion control: %w", err)
	}
	bwe.OnNewPeerConnection(func(_ string, e cc.BandwidthEstimator) { onEstimator(e) })
	ir.Add(bwe)
	// Added after the estimator, so it runs before it on each packet:
	// the estimator reads the transport-wide sequence number it writes.
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(m, ir); err != nil {
		return nil, fmt.Errorf("sfu: transport-cc: %w", err)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir),
		webrtc.WithSettingEngine(s.settings)), nil
}
