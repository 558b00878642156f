package turnsrv

import (
	"sync"
	"sync/atomic"
)

// Stats counts what the TURN server does, for metrics and tests. All
// counters are monotonic except AllocationsActive. Safe for concurrent use.
type Stats struct {
	// AllocationsActive is the number of live allocations.
	AllocationsActive atomic.Int64
	// AllocationsCreated counts allocations created since start.
	AllocationsCreated atomic.Int64
	// QuotaRefusals counts Allocate requests refused with 486.
	QuotaRefusals atomic.Int64
	// PeerDenials counts CreatePermission and ChannelBind requests refused
	// with 403 because of the peer filter.
	PeerDenials atomic.Int64

	mu           sync.Mutex
	authFailures map[string]int64
}

func (s *Stats) authFailure(why authFailure) {
	s.mu.Lock()
	if s.authFailures == nil {
		s.authFailures = map[string]int64{}
	}
	s.authFailures[string(why)]++
	s.mu.Unlock()
}

// AuthFailures returns a copy of the authentication failure counts by
// reason: "unknown-user", "bad-integrity", "expired", "wrong-realm".
func (s *Stats) AuthFailures() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.authFailures))
	for k, v := range s.authFailures {
		out[k] = v
	}
	return out
}
