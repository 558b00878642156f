package signaling

import (
	"sync"

	"github.com/icebox-project/icebox/signaling/wire"
)

// Stats counts inbound messages by type, errors sent by code and refused
// WebSocket upgrades by reason. Types
// outside protocol v1 count as "unknown" and undecodable messages as
// "invalid", so the label set stays bounded. Safe for concurrent use.
type Stats struct {
	mu       sync.Mutex
	messages map[string]int64
	errors   map[string]int64
	refused  map[string]int64
}

func (s *Stats) message(typ string) {
	switch typ {
	case wire.TypeJoin, wire.TypeSignal, wire.TypeLeave, wire.TypePing, "invalid":
	default:
		typ = "unknown"
	}
	s.mu.Lock()
	if s.messages == nil {
		s.messages = map[string]int64{}
	}
	s.messages[typ]++
	s.mu.Unlock()
}

func (s *Stats) error(code string) {
	s.mu.Lock()
	if s.errors == nil {
		s.errors = map[string]int64{}
	}
	s.errors[code]++
	s.mu.Unlock()
}

// Messages returns a copy of the inbound message counts by type.
func (s *Stats) Messages() map[string]int64 { return s.copy(&s.messages) }

// Errors returns a copy of the error counts by code.
func (s *Stats) Errors() map[string]int64 { return s.copy(&s.errors) }

func (s *Stats) copy(m *map[string]int64) map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(*m))
	for k, v := range *m {
		out[k] = v
	}
	return out
}

// Refusals of a WebSocket upgrade, the reasons Refused counts.
const (
	RefusedPerIP            = "per_ip"             // Limits.MaxConnectionsPerIP, the client's own address
	RefusedPerIPv6Aggregate = "per_ipv6_aggregate" // the same cap × the IPv6 aggregate factor, the client's aggregate prefix
)

// refuse counts a refused upgrade under reason.
func (s *Stats) refuse(reason string) {
	s.mu.Lock()
	if s.refused == nil {
		s.refused = map[string]int64{}
	}
	s.refused[reason]++
	s.mu.Unlock()
}

// Refused returns a copy of the refused WebSocket upgrades by reason
// (RefusedPerIP, RefusedPerIPv6Aggregate).
func (s *Stats) Refused() map[string]int64 { return s.copy(&s.refused) }
