package sfu

import (
	"log/slog"
	"net"
	"time"
)

// Defaults of Config and Limits.
const (
	// DefaultPLIInterval is the least time between two PLIs the SFU sends
	// for one layer of one published track.
	DefaultPLIInterval = 500 * time.Millisecond
	// DefaultAllocateInterval is how often each subscriber's layers are
	// chosen again from its bandwidth estimate, and the active speaker.
	DefaultAllocateInterval = 500 * time.Millisecond
	// DefaultInitialBitrate is a subscriber's bandwidth estimate before
	// any feedback, bit/s.
	DefaultInitialBitrate = 1_000_000
	// DefaultMaxBitrate is the most a subscriber's estimate may grow to,
	// bit/s.
	DefaultMaxBitrate = 20_000_000
	// DefaultStartDelay is how long after its answer a new down-track
	// sends its first packet.
	DefaultStartDelay = 500 * time.Millisecond
	// DefaultMinBitrate is the least a subscriber's estimate may fall to,
	// bit/s.
	DefaultMinBitrate = 100_000
)

// Config configures an SFU. The zero value works for tests on one host: a
// UDP socket per participant on every interface, no advertised address.
type Config struct {
	// UDP, if set, carries all media of all participants (ICE UDP mux,
	// RFC 8445 candidates sharing one port). The SFU closes it on Close.
	UDP net.PacketConn
	// TCP, if set, accepts ICE-TCP (RFC 6544 passive candidates, RFC 4571
	// framing) connections; they are told apart by their STUN username.
	// The SFU closes it on Close.
	TCP net.Listener
	// PublicIPs, if set, replace the host address in the SFU's host
	// candidates (a 1:1 NAT's public address). Empty: the local address.
	PublicIPs []string
	// IncludeLoopback offers 127.0.0.1 candidates (tests on loopback).
	IncludeLoopback bool

	// PLIInterval: DefaultPLIInterval when zero.
	PLIInterval time.Duration
	// StartDelay is how long a down-track waits after the answer that
	// opens its media section before its first packet, so the client has
	// applied that answer, unless the client says so first
	// ({"applied":true}): pion ignores for good a stream whose packets
	// come before the SDP describing it, and Chromium takes it for
	// another section's. DefaultStartDelay when zero.
	StartDelay time.Duration
	// AllocateInterval: DefaultAllocateInterval when zero.
	AllocateInterval time.Duration
	// InitialBitrate, MinBitrate, MaxBitrate bound each subscriber's
	// bandwidth estimate, bit/s; the defaults when zero.
	InitialBitrate, MinBitrate, MaxBitrate int

	Limits Limits

	// Logger: slog.Default() when nil.
	Logger *slog.Logger
	// Now is the clock (the PLI throttle, timestamps across layer
	// switches); time.Now when nil.
	Now func() time.Time
	// EstimateObserved, if set, is called with each subscriber's
	// bandwidth estimate (bit/s) at each allocation.
	EstimateObserved func(bitsPerSecond float64)
}

// Limits caps what clients may ask of the SFU. A zero field takes the
// default named in its comment.
type Limits struct {
	// ParticipantsPerRoom: 25.
	ParticipantsPerRoom int
	// Participants on the whole server: 500.
	Participants int
	// PublishersPerRoom: participants who publish at least one track; 25.
	PublishersPerRoom int
	// Publishers on the whole server: 500.
	Publishers int
	// PublishBitrate is the most one participant may send, bit/s, summed
	// over its tracks and layers; past it the top layers are not
	// forwarded. 4,000,000.
	PublishBitrate int
	// SDPSize is the largest SDP accepted, bytes: 262,144 (a browser's
	// offer in a room of 50 holds about 100 media sections of 1-2 KB).
	SDPSize int
	// MediaSections is the most m= sections an SDP may hold: 160.
	MediaSections int
	// CandidateSize is the largest ICE candidate line, bytes: 512.
	CandidateSize int
	// PendingCandidates is how many candidates are held before the first
	// remote description: 64.
	PendingCandidates int
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.ParticipantsPerRoom, 25)
	def(&l.Participants, 500)
	def(&l.PublishersPerRoom, 25)
	def(&l.Publishers, 500)
	def(&l.PublishBitrate, 4_000_000)
	def(&l.SDPSize, 256<<10)
	def(&l.MediaSections, 160)
	def(&l.CandidateSize, 512)
	def(&l.PendingCandidates, 64)
	return l
}

func (c Config) withDefaults() Config {
	if c.PLIInterval <= 0 {
		c.PLIInterval = DefaultPLIInterval
	}
	if c.StartDelay <= 0 {
		c.StartDelay = DefaultStartDelay
	}
	if c.AllocateInterval <= 0 {
		c.AllocateInterval = DefaultAllocateInterval
	}
	if c.InitialBitrate <= 0 {
		c.InitialBitrate = DefaultInitialBitrate
	}
	if c.MinBitrate <= 0 {
		c.MinBitrate = DefaultMinBitrate
	}
	if c.MaxBitrate <= 0 {
		c.MaxBitrate = DefaultMaxBitrate
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Limits = c.Limits.withDefaults()
	return c
}
