package cluster

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/icebox-project/icebox/internal/relayrange"
	"github.com/icebox-project/icebox/internal/roomname"
	"github.com/icebox-project/icebox/signaling"
)

// Joined implements signaling.Cluster.
func (n *Node) Joined(room, id, name string) {
	n.mu.Lock()
	delete(n.pending, id)
	n.mu.Unlock()
	n.announce(event{Kind: kindJoined, Room: room, ID: id, Name: name, Node: n.id})
}

// Left implements signaling.Cluster.
func (n *Node) Left(room, id string) {
	n.mu.Lock()
	delete(n.pending, id)
	n.mu.Unlock()
	n.hand.seated(id)
	n.announce(event{Kind: kindLeft, Room: room, ID: id, Node: n.id})
	n.rel.push(outMsg{kind: kindRelease, room: room, id: id}, 0, false, false)
}

// Resumed implements signaling.Cluster.
func (n *Node) Resumed(room, id, name string) {
	n.hand.seated(id)
	n.announce(event{Kind: kindMoved, Room: room, ID: id, Name: name, Node: n.id})
	go n.setNode(context.Background(), room, id, name)
}

func (n *Node) announce(ev event) {
	b, _ := json.Marshal(ev)
	n.queueOut(outMsg{subject: subjRooms, data: b, kind: ev.Kind, room: ev.Room})
}

// Signal implements signaling.Cluster. Past the outbound queue's share
// for signals the signal is dropped (queue.go).
func (n *Node) Signal(node, room, from, to string, data json.RawMessage) {
	b, _ := json.Marshal(signalWire{Kind: kindSignal, Room: room, From: from, To: to, Data: data, Sent: time.Now().UnixNano()})
	n.queueOut(outMsg{subject: subjNode(node), data: b, kind: kindSignal, room: room})
}

// Resume implements signaling.Cluster: a request every node hears; the
// one holding the suspended peer answers with it.
func (n *Node) Resume(token, room string) (ho signaling.Handover, ok bool) {
	if n.closed.Load() {
		return signaling.Handover{}, false
	}
	// Signals for a peer on its way here wait until it is seated
	// (handover.go).
	n.hand.begin()
	defer func() { n.hand.answered(ho.ID) }()
	b, _ := json.Marshal(resumeWire{Token: token, Room: room, Node: n.id})
	n.stats.out(kindResume)
	// The request names its inbox, under the signature: an answer goes
	// to this node alone.
	inbox := n.nc.NewInbox()
	sub, err := n.nc.SubscribeSync(inbox)
	if err != nil {
		return signaling.Handover{}, false
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := n.nc.PublishMsg(n.sign.msg(subjResume, inbox, b, false)); err != nil {
		n.stats.count(&n.stats.publishErrors)
		return signaling.Handover{}, false
	}
	msg, err := sub.NextMsg(n.cfg.ResumeTimeout)
	if err != nil {
		return signaling.Handover{}, false
	}
	if _, ok := n.verify.verify(msg, false); !ok {
		n.rejected(msg, "bad signature")
		return signaling.Handover{}, false
	}
	n.stats.in(kindResume)
	if json.Unmarshal(msg.Data, &ho) != nil || ho.ID == "" {
		return signaling.Handover{}, false
	}
	return ho, true
}

// handleResume answers a resume request when this node holds the peer;
// other nodes stay silent.
func (n *Node) handleResume(msg *nats.Msg) {
	sender, ok := n.verify.verify(msg, false)
	if !ok {
		n.rejected(msg, "bad signature")
		return
	}
	var req resumeWire
	if json.Unmarshal(msg.Data, &req) != nil || req.Node == n.id || req.Token == "" {
		return
	}
	if req.Node != sender {
		n.rejected(msg, "names another node than its signer")
		return
	}
	ho, ok := n.rooms.HandOver(req.Token, req.Room, req.Node)
	if !ok {
		return
	}
	n.stats.in(kindResume)
	b, _ := json.Marshal(ho)
	if err := n.nc.PublishMsg(n.sign.msg(msg.Reply, "", b, false)); err != nil {
		// The peer is with the asking node in our view now; without an
		// answer it never arrives there, so it leaves.
		n.log.Warn("cluster: resume answer lost; the peer leaves", "room", req.Room, "peer", ho.ID, "error", err)
		n.rooms.RemoteLeft(req.Room, ho.ID)
		n.Left(req.Room, ho.ID)
		return
	}
	n.stats.out(kindResume)
}

// reconnected asks every live node for its peers again: announcements
// sent while this node's connection was down are lost.
func (n *Node) reconnected() {
	n.log.Info("cluster: NATS connection back; asking the nodes for their peers")
	for _, id := range n.liveNodes() {
		n.askMembers(id)
	}
}

// askMembers asks node for its own peers; the answer arrives in order
// with that node's announcements (handleMembers, dispatch).
func (n *Node) askMembers(node string) {
	if err := n.nc.PublishMsg(n.sign.msg(subjMembers(node), subjSync(n.id), nil, false)); err != nil {
		n.stats.count(&n.stats.publishErrors)
		return
	}
	n.stats.out(kindMembers)
}

// handleMembers answers a node asking for this node's peers. The answer
// is queued with the announcements, under the signaling lock, so the
// asker applies it in order with them: a peer that leaves after the
// answer is listed in it, and its departure follows.
func (n *Node) handleMembers(msg *nats.Msg) {
	if msg.Reply == "" || n.rooms == nil {
		return
	}
	// Only a node asks, and the answer goes to its own inbound subject.
	sender, ok := n.verify.verify(msg, false)
	if !ok || msg.Reply != subjSync(sender) {
		n.rejected(msg, "an unsigned request for this node's peers")
		return
	}
	n.stats.in(kindMembers)
	n.answerMembers(msg.Reply)
	if n.knownFor(sender, n.cfg.DeadAfter) {
		// A node that knew this one asks again: it took this node for
		// gone (cut off one way, or paused) and gave its peers' names
		// back. Put them back, or evict those whose names went to others.
		n.reconcile()
	}
}

// knownFor reports whether node is taken for alive and was first heard
// more than d ago (a node that asks at its start, or when this one is
// new to it, is not one that took this node for gone).
func (n *Node) knownFor(node string, d time.Duration) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	pn := n.nodes[node]
	return pn != nil && pn.name != "" && !pn.dead && time.Since(pn.firstSeen) > d
}

// reconcile runs resync in the background and then asks every live
// node for its peers again, which brings in the peers this node left
// out while one of its own held their names. One runs at a time; asked
// for meanwhile, it runs once more after (what it read may be older than
// what asked for it).
func (n *Node) reconcile() {
	if !n.ready.Load() {
		return
	}
	n.mu.Lock()
	if n.resyncing {
		n.resyncAgain = true
		n.mu.Unlock()
		return
	}
	n.resyncing = true
	n.mu.Unlock()
	go func() {
		for {
			n.reconcileOnce()
			n.mu.Lock()
			again := n.resyncAgain && !n.closed.Load()
			n.resyncAgain = false
			n.resyncing = again
			n.mu.Unlock()
			if !again {
				return
			}
		}
	}()
}

func (n *Node) reconcileOnce() {
	// Right after a heal JetStream elects its leaders again: tried
	// until it answers, for up to a minute.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		err := n.resync(ctx)
		if err == nil {
			break
		}
		if !retry(ctx) || n.closed.Load() {
			n.log.Warn("cluster: rooms not read again", "error", err)
			return
		}
		n.log.Debug("cluster: rooms read again later", "error", err)
	}
	for _, id := range n.liveNodes() {
		n.askMembers(id)
	}
}

// answerMembers queues this node's peers for the node whose sync subject
// is to, in order with the announcements.
func (n *Node) answerMembers(to string) {
	n.rooms.WithLocal(func(local []signaling.Member) {
		for i := 0; i == 0 || i < len(local); i += membersChunk {
			part := local[i:min(i+membersChunk, len(local))]
			w := membersWire{Node: n.id, Members: make([]memberEntry, 0, len(part)), Last: i+membersChunk >= len(local)}
			for _, m := range part {
				w.Members = append(w.Members, memberEntry{Room: m.Room, ID: m.ID, Name: m.Name})
			}
			b, _ := json.Marshal(w)
			n.queueOut(outMsg{subject: to, data: b, kind: kindMembers})
		}
	})
}

// send publishes the outbound queue in order. Once it has emptied the
// queue it recovers from room events dropped from it (resync.go).
func (n *Node) send(ctx context.Context) {
	for ctx.Err() == nil {
		m, ok := n.out.next()
		if !ok {
			n.resyncOut()
			select {
			case <-ctx.Done():
				return
			case <-n.out.wake:
			}
			continue
		}
		if m.done != nil {
			close(m.done)
			continue
		}
		if err := n.nc.PublishMsg(n.sign.msg(m.subject, "", m.data, true)); err != nil {
			n.stats.count(&n.stats.publishErrors)
			continue
		}
		n.stats.out(m.kind)
	}
}

// receive applies room events, signals and heartbeats in arrival order.
// Once it has emptied the inbound queue it recovers from room events
// dropped before they reached it (resync.go). Signals parked for a
// hand-over are applied again when one ends and when their time is up
// (handover.go).
func (n *Node) receive(ctx context.Context) {
	for ctx.Err() == nil {
		select {
		case <-n.hand.wake:
			n.unpark(time.Now())
		default:
			if at := n.hand.nextExpiry(); !at.IsZero() && !time.Now().Before(at) {
				n.unpark(time.Now())
			}
		}
		msg, ok := n.inq.next()
		if !ok {
			n.resyncIn()
			n.waitInbound(ctx)
			continue
		}
		n.dispatch(msg)
	}
}

// waitInbound waits for the inbound queue, for the end of a hand-over
// (which applies the signals parked for it), for the first parked
// signal's time to be up, or for ctx to end.
func (n *Node) waitInbound(ctx context.Context) {
	var expiry <-chan time.Time
	if at := n.hand.nextExpiry(); !at.IsZero() {
		t := time.NewTimer(time.Until(at))
		defer t.Stop()
		expiry = t.C
	}
	select {
	case <-ctx.Done():
	case <-n.inq.wake:
	case <-n.hand.wake:
		n.unpark(time.Now())
	case <-expiry:
		n.unpark(time.Now())
	}
}

// dispatch applies one message from another node, once it is
// authenticated (auth.go): a message that fails, or whose payload names
// another node than the one that signed it, is dropped and counted as
// rejected. A peer's departure is applied only from the node holding it.
func (n *Node) dispatch(msg *nats.Msg) {
	sender, ok := n.verify.verify(msg, true)
	if !ok {
		n.rejected(msg, "bad signature or replayed")
		return
	}
	switch {
	case msg.Subject == subjHeartbeat:
		var hb heartbeatWire
		if json.Unmarshal(msg.Data, &hb) != nil || hb.Node == "" {
			n.stats.in(kindInvalid)
			return
		}
		if hb.Node != sender {
			n.rejected(msg, "names another node than its signer")
			return
		}
		n.stats.in(kindHeartbeat)
		n.heard(hb)
	case msg.Subject == subjRooms:
		var ev event
		if json.Unmarshal(msg.Data, &ev) != nil || !roomname.Valid(ev.Room) || ev.ID == "" || ev.Node == "" || ev.Node == n.id {
			n.stats.in(kindInvalid)
			return
		}
		if ev.Node != sender {
			n.rejected(msg, "names another node than its signer")
			return
		}
		n.noteNode(ev.Node)
		switch ev.Kind {
		case kindJoined:
			if n.rooms.RemoteAdmitted(ev.Room, ev.ID, ev.Name, ev.Node) {
				// A peer here holds the name: it may have lost it while
				// this node was cut off. The record decides.
				n.reconcile()
			}
		case kindLeft:
			// Only the node holding the peer (that seated it, or that it
			// resumed on: the room record's node) says it left.
			if !n.rooms.RemoteLeftOf(ev.Room, ev.ID, ev.Node) {
				n.rejected(msg, "a departure of a peer another node holds")
				return
			}
		case kindMoved:
			n.moved(ev)
		default:
			n.stats.in(kindInvalid)
			return
		}
		n.stats.in(ev.Kind)
	case msg.Subject == subjSync(n.id):
		var mw membersWire
		if json.Unmarshal(msg.Data, &mw) != nil || mw.Node == "" || mw.Node == n.id {
			n.stats.in(kindInvalid)
			return
		}
		if mw.Node != sender {
			n.rejected(msg, "names another node than its signer")
			return
		}
		n.stats.in(kindMembers)
		n.noteNode(mw.Node)
		if n.isDead(mw.Node) {
			return // gone since it answered
		}
		n.mu.Lock()
		if n.syncing == nil {
			n.syncing = map[string]map[string]bool{}
		}
		listed := n.syncing[mw.Node]
		if listed == nil {
			listed = map[string]bool{}
			n.syncing[mw.Node] = listed
		}
		if mw.Last {
			delete(n.syncing, mw.Node)
		}
		n.mu.Unlock()
		conflict := false
		for _, m := range mw.Members {
			if roomname.Valid(m.Room) && m.ID != "" {
				listed[m.Room+"\x00"+m.ID] = true
				if n.rooms.RemoteAdmitted(m.Room, m.ID, m.Name, mw.Node) {
					// A peer here holds the name (after a partition or a
					// pause): the record decides which one keeps it.
					conflict = true
				}
			}
		}
		if conflict {
			n.reconcile()
		}
		if mw.Last {
			n.unlisted(mw.Node, listed)
		}
	default:
		var sw signalWire
		if json.Unmarshal(msg.Data, &sw) != nil || sw.Kind != kindSignal && sw.Kind != kindSFU {
			n.stats.in(kindInvalid)
			return
		}
		n.stats.in(sw.Kind)
		if sw.Kind == kindSFU {
			// Between a peer's node and its SFU room's host (sfuhost.go):
			// the sender is the signer, never what the message says.
			if !roomname.Valid(sw.Room) || !n.rooms.RemoteSFU(sw.Room, sw.To, sender, sw.Data) {
				n.stats.count(&n.stats.undelivered)
			}
			return
		}
		if sw.Sent > 0 && n.cfg.ObserveLatency != nil {
			n.cfg.ObserveLatency(time.Duration(time.Now().UnixNano() - sw.Sent))
		}
		n.applySignal(sw)
	}
}

// moved applies another node's announcement that a peer resumed there.
func (n *Node) moved(ev event) {
	n.mu.Lock()
	delete(n.unlistedPeers, ev.ID)
	n.mu.Unlock()
	n.rooms.RemoteMoved(ev.Room, ev.ID, ev.Name, ev.Node)
}

// unlisted handles the peers this node holds as node's that node's
// members answer did not list (listed, by room and id). They left while
// this node was not listening (a reconnect), or they moved: a peer node
// handed over to another node (a resume there) is not in its answer,
// and the other node's announcement of the move may come after the
// answer, since the two nodes' messages are not ordered with each other.
// So each leaves after two heartbeat intervals, unless a move of it was
// heard meanwhile or it is no longer node's by then (RemoteLeftOf).
func (n *Node) unlisted(node string, listed map[string]bool) {
	var gone []signaling.Member
	for _, m := range n.rooms.Members() { // the hub's lock, before n.mu
		if m.Node == node && !listed[m.Room+"\x00"+m.ID] {
			gone = append(gone, m)
		}
	}
	if len(gone) == 0 {
		return
	}
	n.mu.Lock()
	if n.unlistedPeers == nil {
		n.unlistedPeers = map[string]bool{}
	}
	for _, m := range gone {
		n.unlistedPeers[m.ID] = true
	}
	n.mu.Unlock()
	n.mu.Lock()
	after := n.afterFunc
	n.mu.Unlock()
	if after == nil {
		after = time.AfterFunc
	}
	after(2*n.cfg.HeartbeatInterval, func() {
		for _, m := range gone {
			n.mu.Lock()
			still := n.unlistedPeers[m.ID]
			delete(n.unlistedPeers, m.ID)
			n.mu.Unlock()
			if still && !n.closed.Load() {
				n.rooms.RemoteLeftOf(m.Room, m.ID, node)
			}
		}
	})
}

// heartbeats publishes this node's heartbeat and judges the others'
// every HeartbeatInterval.
func (n *Node) heartbeats(ctx context.Context) {
	t := time.NewTicker(n.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		n.queueOut(outMsg{subject: subjHeartbeat, data: n.heartbeat(false), kind: kindHeartbeat})
		n.sweep()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Node) heartbeat(gone bool) []byte {
	peers := 0
	if n.rooms != nil {
		_, _, peers = n.rooms.Counts()
	}
	hb := heartbeatWire{Kind: kindHeartbeat, Node: n.id, Name: n.cfg.Name, Relay: n.cfg.Relay, Peers: peers, Gone: gone}
	if !gone {
		hb.Hears = n.hears()
	}
	b, _ := json.Marshal(hb)
	return b
}

// heard records a heartbeat. A node that says it is gone leaves at once;
// one that comes back after being taken for gone (it was cut off) makes
// this node read the rooms again.
func (n *Node) heard(hb heartbeatWire) {
	if hb.Node == n.id {
		return
	}
	now := time.Now()
	n.mu.Lock()
	pn := n.nodes[hb.Node]
	// isNew: its first heartbeat (it may be known already from a room
	// event, by id only).
	isNew := pn == nil || pn.name == ""
	if pn == nil {
		pn = &peerNode{id: hb.Node, firstSeen: now}
		n.nodes[hb.Node] = pn
	}
	changed := isNew || pn.relay != hb.Relay || pn.dead != hb.Gone
	revived := pn.dead && !hb.Gone
	// unheard: kept alive by the others' word while this node heard
	// nothing from it (a route cut one way or flapping): what it
	// announced meanwhile may be lost.
	unheard := !isNew && !revived && !pn.lastHeard.IsZero() && now.Sub(pn.lastHeard) > n.cfg.DeadAfter
	pn.name, pn.relay, pn.peers, pn.lastSeen, pn.lastHeard = hb.Name, hb.Relay, hb.Peers, now, now
	pn.stopped = pn.stopped || hb.Gone
	if hb.Gone && !pn.dead {
		pn.dead = true
		n.mu.Unlock()
		n.gone(hb.Node, "stopped")
		n.nodesChanged()
		return
	}
	pn.dead = hb.Gone
	n.mu.Unlock()
	if isNew {
		n.log.Info("cluster node joined", "node", hb.Node)
	}
	if unheard {
		n.log.Info("cluster node heard again", "node", hb.Node)
	}
	if isNew || revived || unheard {
		// Its peers from itself, in order with its announcements.
		n.askMembers(hb.Node)
	}
	if !hb.Gone {
		n.vouched(hb.Node, hb.Hears, now)
	}
	if changed {
		n.nodesChanged()
	}
	if revived && n.ready.Load() {
		// Put back this node's own peers, dropped from the records if the
		// others took this node for gone, or evict those whose names went
		// to other peers meanwhile.
		n.log.Info("cluster node back", "node", hb.Node)
		n.reconcile()
	}
}

func (n *Node) isDead(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	pn := n.nodes[id]
	return pn != nil && pn.dead
}

// noteNode makes a node first seen in a room event or record known, as
// if heard now, so that it is judged gone if it never sends a heartbeat.
func (n *Node) noteNode(id string) {
	if id == n.id {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nodes[id] == nil {
		n.nodes[id] = &peerNode{id: id, lastSeen: time.Now(), firstSeen: time.Now()}
	}
}

// sweep takes nodes not heard for DeadAfter for gone.
func (n *Node) sweep() {
	now := time.Now()
	var dead []string
	n.mu.Lock()
	if !n.lastSweep.IsZero() && now.Sub(n.lastSweep) > n.cfg.DeadAfter {
		// The check itself ran late: this process was paused (SIGSTOP, a
		// stalled VM), so the silence is its own, not the others'. They
		// get a fresh DeadAfter; what they sent meanwhile is on its way.
		n.log.Warn("cluster: liveness check late; this node was paused", "late", now.Sub(n.lastSweep).Round(time.Millisecond))
		for _, pn := range n.nodes {
			if !pn.dead {
				pn.lastSeen, pn.lastHeard = now, now
			}
		}
		// The others may have taken this node for gone meanwhile and
		// given its peers' names to others.
		defer n.reconcile()
	}
	n.lastSweep = now
	for id, pn := range n.nodes {
		if !pn.dead && now.Sub(pn.lastSeen) > n.cfg.DeadAfter {
			pn.dead, pn.goneAt = true, now
			dead = append(dead, id)
		}
		// Forget nodes long gone (restarted nodes leave their old ids).
		if pn.dead && now.Sub(pn.lastSeen) > 10*n.cfg.DeadAfter {
			delete(n.nodes, id)
		}
	}
	n.mu.Unlock()
	for _, id := range dead {
		n.gone(id, "silent")
	}
	if len(dead) > 0 {
		n.nodesChanged()
	}
	if n.ready.Load() && n.rooms != nil {
		// Raise the bucket's replicas as nodes join (cheap when no change).
		if kvp := n.kv.Load(); kvp != nil && n.lowestID() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if _, err := n.openBucket(ctx); err != nil {
				n.log.Debug("cluster: bucket replicas not raised", "error", err)
			}
			cancel()
		}
	}
}

// gone drops every peer of node here and gives their places back.
func (n *Node) gone(node, why string) {
	members := n.rooms.NodeGone(node)
	n.log.Info("cluster node gone", "node", node, "reason", why, "peers", len(members))
	for _, m := range members {
		n.rel.push(outMsg{kind: kindRelease, room: m.Room, id: m.ID}, 0, false, false)
	}
}

// lowestID reports whether this node has the smallest id of the live
// nodes: the one that resizes the bucket.
func (n *Node) lowestID() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, pn := range n.nodes {
		if !pn.dead && id < n.id {
			return false
		}
	}
	return true
}

func (n *Node) aliveCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, pn := range n.nodes {
		if !pn.dead && pn.name != "" {
			c++
		}
	}
	return c
}

func (n *Node) nodesChanged() {
	if n.onNodes == nil {
		return
	}
	n.mu.Lock()
	var rs []relayrange.RelayRange
	for _, pn := range n.nodes {
		if !pn.dead && pn.relay.Addr.IsValid() {
			rs = append(rs, pn.relay)
		}
	}
	n.mu.Unlock()
	slices.SortFunc(rs, func(a, b relayrange.RelayRange) int { return a.Addr.Compare(b.Addr)*65536 + int(a.Min) - int(b.Min) })
	n.onNodes(rs)
}
