package cluster

import "time"

// A node is alive while any live node hears it. Heartbeats cross only
// the routes between two nodes (nats-server does not pass a route's
// messages on to another route), so a route cut between a and c alone,
// or flapping, or slow and lossy, silences c for a while c still
// reaches b, and so the majority, and holds its peers' names there.
// Were a to take c for gone on its own, it would give c's names back in
// the bucket while c's peers keep them: two holders of one name. So
// each heartbeat carries how long ago its sender last heard each other
// node (Hears), and a node takes another for gone only once neither it
// nor any live node has heard that one for DeadAfter: nodes cut off from
// every other, or stopped.
//
// What a node's word may change is bounded: it only keeps alive a node
// this node has heard itself before and that has not said it is
// stopping; it never makes a node gone, never adds one, and reports
// only what it heard directly (its own word is not passed on, so two
// nodes cannot keep a dead one alive by repeating each other).

// maxHears bounds the entries of a heartbeat's Hears that are read.
const maxHears = 64

// hears is, for each node heard directly within DeadAfter, how long ago
// in milliseconds (heartbeatWire.Hears).
func (n *Node) hears() map[string]int64 {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	var h map[string]int64
	for id, pn := range n.nodes {
		if pn.dead || pn.lastHeard.IsZero() {
			continue
		}
		if age := now.Sub(pn.lastHeard); age <= n.cfg.DeadAfter {
			if h == nil {
				h = make(map[string]int64, len(n.nodes))
			}
			h[id] = age.Milliseconds()
		}
	}
	return h
}

// vouched applies from's word (its Hears, received at now): a node it
// heard within DeadAfter is alive here as of then. A node taken for
// gone by silence comes back, as when heard here: its peers are asked
// for, and this node's own checked against the records.
func (n *Node) vouched(from string, hears map[string]int64, now time.Time) {
	if len(hears) == 0 || len(hears) > maxHears {
		return
	}
	var back []string
	n.mu.Lock()
	for id, ms := range hears {
		pn := n.nodes[id]
		if id == n.id || id == from || pn == nil || pn.lastHeard.IsZero() || pn.stopped ||
			ms < 0 || ms > n.cfg.DeadAfter.Milliseconds() {
			continue
		}
		at := now.Add(-time.Duration(ms) * time.Millisecond)
		if !at.After(pn.lastSeen) || pn.dead && !at.After(pn.goneAt) {
			// Old news, or heard before this node gave it up: a node that
			// died is not brought back by a word sent on the way.
			continue
		}
		pn.lastSeen = at
		if pn.dead {
			pn.dead = false
			back = append(back, id)
		}
	}
	n.mu.Unlock()
	if len(back) == 0 {
		return
	}
	for _, id := range back {
		n.log.Info("cluster node back", "node", id, "heard_by", from)
		n.askMembers(id)
	}
	n.nodesChanged()
	if n.ready.Load() {
		n.reconcile()
	}
}
