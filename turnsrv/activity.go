package turnsrv

import (
	"sync"
	"time"
)

// activityInterval is how often the server samples its relay counters: the
// resolution of LastRelayed, and how often the peer refusal summary is
// considered.
const activityInterval = 5 * time.Second

// denialSummaryInterval is how often refused peers are summed up in one
// log line, when there were any.
const denialSummaryInterval = time.Minute

// activity remembers when a counter last grew.
type activity struct {
	mu    sync.Mutex
	count int64
	at    time.Time // zero: it has not grown since the server started
}

// sample notes the counter's value n at now and returns when it last grew.
func (a *activity) sample(n int64, now time.Time) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n != a.count {
		a.count, a.at = n, now
	}
	return a.at
}

// LastRelayed is when the server last relayed a datagram from a client to
// a peer (Stats.PacketsToPeers grew), to within activityInterval (5 s), or
// the zero time when it has relayed none since New. A live call relays in
// both directions at least every few seconds (RTP, RTCP, ICE consent
// checks, RFC 7675 §5.1), so a server that has relayed nothing for 30 s
// holds no call, only allocations of clients that left without deleting
// them; a shutdown need not wait for those (daemon).
func (s *Server) LastRelayed() time.Time {
	return s.relayed.sample(s.stats.PacketsToPeers.Load(), time.Now())
}

// peerDenialSummary logs, at most once per denialSummaryInterval and only
// when some were refused, how many CreatePermission and ChannelBind
// requests the peer filter refused since the last summary. Every browser
// offers its private host candidates as peers, so each call brings a
// handful of refusals: they are logged one by one only at debug level
// (guard.go) and summed up here at info. now is the sweep's clock.
func (s *Server) peerDenialSummary(now time.Time) {
	n := s.stats.PeerDenials.Load()
	s.denials.mu.Lock()
	defer s.denials.mu.Unlock()
	if s.denials.at.IsZero() {
		s.denials.at = now
	}
	if now.Sub(s.denials.at) < denialSummaryInterval {
		return
	}
	if d := n - s.denials.count; d > 0 {
		s.log.Info("turn peers refused", "count", d, "since", s.denials.at.Format(time.RFC3339),
			"why", "peer filter: private, loopback or own addresses (browsers offer their host candidates); each is logged at debug")
	}
	s.denials.count, s.denials.at = n, now
}

// watchActivity samples the relay counter and sums up peer refusals every
// activityInterval until Close.
func (s *Server) watchActivity() {
	defer s.wg.Done()
	t := time.NewTicker(activityInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			s.relayed.sample(s.stats.PacketsToPeers.Load(), now)
			s.peerDenialSummary(now)
		}
	}
}
