package cluster

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/icebox-project/icebox/internal/relayrange"
)

// Stats counts a Node's messages to and from the other nodes by kind
// (joined, left, moved, signal, sfu, heartbeat, resume; invalid for what
// could not be read), and its failures. Safe for concurrent use.
type Stats struct {
	mu            sync.Mutex
	sent, recvd   map[string]int64
	dropOutK      map[string]int64
	dropInK       map[string]int64
	publishErrors atomic.Int64
	conflicts     atomic.Int64
	undelivered   atomic.Int64
}

func (s *Stats) out(kind string) { s.add(&s.sent, kind) }
func (s *Stats) in(kind string)  { s.add(&s.recvd, kind) }

func (s *Stats) dropOut(kind string) { s.add(&s.dropOutK, kind) }
func (s *Stats) dropIn(kind string)  { s.add(&s.dropInK, kind) }

func (s *Stats) add(m *map[string]int64, kind string) {
	s.mu.Lock()
	if *m == nil {
		*m = map[string]int64{}
	}
	(*m)[kind]++
	s.mu.Unlock()
}

func (s *Stats) count(c *atomic.Int64) { c.Add(1) }

// Sent and Received return copies of the message counts by kind.
func (s *Stats) Sent() map[string]int64     { return s.copy(s.sent) }
func (s *Stats) Received() map[string]int64 { return s.copy(s.recvd) }

// DroppedOut is the messages dropped from the outbound queue, full
// (queue.go), by kind.
func (s *Stats) DroppedOut() map[string]int64 { return s.copy(s.dropOutK) }

// DroppedIn is the messages from other nodes dropped before they were
// applied, the inbound queue full, by kind: signal, heartbeat, members,
// joined, left, moved, room (a room event not read), handoff (dropped by
// nats.go, its hand-off channel full: the count of such episodes).
func (s *Stats) DroppedIn() map[string]int64 { return s.copy(s.dropInK) }

func (s *Stats) copy(m map[string]int64) map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// PublishErrors is the messages NATS refused to send (connection down).
func (s *Stats) PublishErrors() int64 { return s.publishErrors.Load() }

// Conflicts is the compare-and-set retries: another node changed a room
// record at the same time.
func (s *Stats) Conflicts() int64 { return s.conflicts.Load() }

// Undelivered is the signals from other nodes for a peer not here.
func (s *Stats) Undelivered() int64 { return s.undelivered.Load() }

// Stats returns the node's counters.
func (n *Node) Stats() *Stats { return &n.stats }

// NodeStatus is one node as this node sees it.
type NodeStatus struct {
	ID       string                `json:"id"`
	Name     string                `json:"name"`
	Self     bool                  `json:"self,omitempty"`
	Alive    bool                  `json:"alive"`
	LastSeen time.Time             `json:"last_seen,omitzero"`
	Relay    relayrange.RelayRange `json:"relay"`
	Peers    int                   `json:"peers"`
}

// Status is a node's view of the cluster.
type Status struct {
	Node      string       `json:"node"`
	Connected bool         `json:"connected"`
	Ready     bool         `json:"ready"`
	Replicas  int          `json:"replicas"`
	InSync    int          `json:"in_sync"`
	Nodes     []NodeStatus `json:"nodes"`
}

// Status returns this node's view: itself and every node heard of, by
// name. Replicas is the rooms bucket's configured copies, 0 before it
// is open; InSync is how many of them hold every committed write now (the
// stream leader and the replicas JetStream reports current, online and
// no longer pending, with no change of copies under way). A bucket
// survives the loss of one node only once InSync is 3.
func (n *Node) Status(ctx context.Context) Status {
	st := Status{Node: n.id, Connected: n.nc.IsConnected(), Ready: n.ready.Load()}
	self := 0
	if n.rooms != nil {
		_, _, self = n.rooms.Counts()
	}
	st.Nodes = append(st.Nodes, NodeStatus{ID: n.id, Name: n.cfg.Name, Self: true, Alive: true, Relay: n.cfg.Relay, Peers: self})
	n.mu.Lock()
	for _, pn := range n.nodes {
		st.Nodes = append(st.Nodes, NodeStatus{ID: pn.id, Name: pn.name, Alive: !pn.dead, LastSeen: pn.lastSeen, Relay: pn.relay, Peers: pn.peers})
	}
	n.mu.Unlock()
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].ID < st.Nodes[j].ID })
	if kvp := n.kv.Load(); kvp != nil {
		if s, err := (*kvp).Status(ctx); err == nil {
			if bs, ok := s.(*jetstream.KeyValueBucketStatus); ok {
				si := bs.StreamInfo()
				st.Replicas = si.Config.Replicas
				st.InSync = inSync(si.Cluster)
			}
		}
	}
	return st
}

// AliveNodes is the number of nodes alive, this one included.
func (n *Node) AliveNodes() int { return n.aliveCount() + 1 }

// inSync counts the copies of a stream that hold every committed write:
// its leader and each replica that is current, online and a full member
// of the Raft group. 0 while the group is being reshaped (Desired set) or
// has no leader; 1 for a server outside any cluster (no ClusterInfo).
func inSync(ci *jetstream.ClusterInfo) int {
	if ci == nil {
		return 1
	}
	if ci.Leader == "" || ci.Desired != nil {
		return 0
	}
	n := 1
	for _, r := range ci.Replicas {
		if r != nil && r.Current && !r.Offline && !r.Pending {
			n++
		}
	}
	return n
}
