package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/icebox-project/icebox/signaling"
)

// RoomsBucket is the JetStream key-value bucket of room records: key the
// room name, value a record. Kept in memory, replicated on up to three
// nodes (History 1: only the latest record counts).
const RoomsBucket = "icebox-rooms"

// maxReplicas is the most copies of the bucket kept; three survive one
// node's loss.
const maxReplicas = 3

// attemptTimeout bounds one read or compare-and-set of a record.
const attemptTimeout = time.Second

// ErrUnavailable: the cluster cannot admit a join now (JetStream not
// ready, no quorum).
var ErrUnavailable = errors.New("cluster: not ready")

// record is a room's members across the cluster, and the node hosting
// its SFU (sfuhost.go): its first joiner's, or, once that node is gone,
// the successor the live nodes agree on.
type record struct {
	Members []member `json:"m"`
	Host    string   `json:"h,omitempty"`
}

type member struct {
	ID   string `json:"i"`
	Name string `json:"n"`
	Node string `json:"o"`
}

func (r *record) index(id string) int {
	return slices.IndexFunc(r.Members, func(m member) bool { return m.ID == id })
}

// Admit implements signaling.Cluster: a compare-and-set of the room's
// record, retried while another node changes it at the same time.
// Members of nodes known to be gone, and of this node but no longer here,
// are dropped on the way, and a host that is gone is replaced by its
// successor (Successor).
func (n *Node) Admit(room, id, name string, maxPeers int) (signaling.Admission, error) {
	a, err := n.admit(room, id, name, maxPeers)
	if errors.Is(err, ErrUnavailable) {
		n.log.Warn("cluster: join not admitted", "room", room, "error", err)
	}
	return a, err
}

func (n *Node) admit(room, id, name string, maxPeers int) (signaling.Admission, error) {
	kvp := n.kv.Load()
	if kvp == nil || !n.ready.Load() {
		return signaling.Admission{}, ErrUnavailable
	}
	kv := *kvp
	ctx, cancel := context.WithTimeout(context.Background(), admitTimeout)
	defer cancel()
	for {
		a, err := n.admitOnce(ctx, kv, room, id, name, maxPeers)
		switch {
		case err == nil:
			return a, nil
		case errors.Is(err, signaling.ErrNameTaken), errors.Is(err, signaling.ErrRoomFull):
			return signaling.Admission{}, err
		case errors.Is(err, jetstream.ErrKeyExists):
			// Another node changed the record meanwhile: read it again.
			n.stats.count(&n.stats.conflicts)
			if ctx.Err() != nil {
				return signaling.Admission{}, ErrUnavailable
			}
		default:
			// No answer yet (a stream leader being elected): again, within
			// admitTimeout.
			n.log.Debug("cluster: admission retried", "room", room, "error", err)
			if !retry(ctx) {
				return signaling.Admission{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
		}
	}
}

// admitOnce is one attempt of admit: read the room's record and
// compare-and-set it with id added (and a host, if it has none alive),
// under a deadline of its own
// (attemptTimeout, within ctx), so a request lost while a stream leader is
// elected is tried again before admitTimeout; the attempt's context ends
// when it returns. Errors: signaling.ErrNameTaken, signaling.ErrRoomFull,
// jetstream.ErrKeyExists when another node changed the record meanwhile,
// or the bucket's error.
func (n *Node) admitOnce(ctx context.Context, kv jetstream.KeyValue, room, id, name string, maxPeers int) (signaling.Admission, error) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	rec, rev, err := n.get(ctx, kv, room)
	if err != nil {
		return signaling.Admission{}, err
	}
	rec.Members = slices.DeleteFunc(rec.Members, func(m member) bool { return n.stale(room, m) })
	var refusal error
	switch {
	case slices.ContainsFunc(rec.Members, func(m member) bool { return m.Name == name }):
		refusal = signaling.ErrNameTaken
	case len(rec.Members) >= maxPeers:
		refusal = signaling.ErrRoomFull
	}
	if refusal != nil {
		// The bucket serves reads from any replica, which may lag: a
		// refusal stands only on the newest record, which writing it back
		// at its revision proves (jetstream.ErrKeyExists: read it again).
		if err := n.put(ctx, kv, room, rec, rev); err != nil {
			return signaling.Admission{}, err
		}
		return signaling.Admission{}, refusal
	}
	others := make([]string, 0, len(rec.Members))
	for _, m := range rec.Members {
		others = append(others, m.ID)
	}
	switch {
	case len(rec.Members) == 0 || rec.Host == "":
		// The first joiner's node hosts the room's SFU.
		rec.Host = n.id
	case n.hostGone(rec.Host):
		rec.Host = n.Successor(room)
	}
	rec.Members = append(rec.Members, member{ID: id, Name: name, Node: n.id})
	n.mu.Lock()
	n.pending[id] = struct{}{}
	n.mu.Unlock()
	if err := n.put(ctx, kv, room, rec, rev); err != nil {
		n.mu.Lock()
		delete(n.pending, id)
		n.mu.Unlock()
		return signaling.Admission{}, err
	}
	return signaling.Admission{Others: others, Host: rec.Host}, nil
}

// heldHere reports whether m is this node's and its peer is in room
// here, or being admitted.
func (n *Node) heldHere(room string, m member) bool {
	if m.Node != n.id {
		return false
	}
	n.mu.Lock()
	_, pending := n.pending[m.ID]
	n.mu.Unlock()
	return pending || n.rooms.HasLocal(room, m.ID)
}

// retry waits a moment before another try; false once ctx has ended.
func retry(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(100 * time.Millisecond):
		return true
	}
}

// stale reports whether m no longer holds its place: its node is known
// to be gone (or, once this node has listened for DeadAfter, unknown), or
// it is this node's and neither here nor being admitted.
func (n *Node) stale(room string, m member) bool {
	if m.Node == n.id {
		n.mu.Lock()
		_, pending := n.pending[m.ID]
		n.mu.Unlock()
		return !pending && !n.rooms.HasLocal(room, m.ID)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	pn := n.nodes[m.Node]
	if pn == nil {
		return time.Since(n.start) > n.cfg.DeadAfter
	}
	return pn.dead
}

// get reads room's record; a missing room is an empty record at
// revision 0.
func (n *Node) get(ctx context.Context, kv jetstream.KeyValue, room string) (record, uint64, error) {
	var rec record
	e, err := kv.Get(ctx, room)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rec, 0, nil
	}
	if err != nil {
		return rec, 0, err
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		// A record this version cannot read is replaced.
		n.log.Warn("cluster: unreadable room record replaced", "room", room, "error", err)
		return record{}, e.Revision(), nil
	}
	return rec, e.Revision(), nil
}

// put writes rec at revision rev (0: the key must not exist); an empty
// record deletes the key. A concurrent change is jetstream.ErrKeyExists.
func (n *Node) put(ctx context.Context, kv jetstream.KeyValue, room string, rec record, rev uint64) error {
	if len(rec.Members) == 0 {
		if rev == 0 {
			return nil
		}
		err := kv.Delete(ctx, room, jetstream.LastRevision(rev))
		if err != nil && isWrongRevision(err) {
			return jetstream.ErrKeyExists
		}
		return err
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if rev == 0 {
		_, err = kv.Create(ctx, room, b)
	} else {
		_, err = kv.Update(ctx, room, b, rev)
	}
	return err
}

func isWrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// modify applies f to room's record by compare-and-set until it sticks
// or ctx ends.
func (n *Node) modify(ctx context.Context, kv jetstream.KeyValue, room string, f func(*record) bool) error {
	for {
		err := n.modifyOnce(ctx, kv, room, f)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, jetstream.ErrKeyExists):
			n.stats.count(&n.stats.conflicts)
		case !retry(ctx):
			return err
		}
	}
}

func (n *Node) modifyOnce(ctx context.Context, kv jetstream.KeyValue, room string, f func(*record) bool) error {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	rec, rev, err := n.get(ctx, kv, room)
	if err != nil {
		return err
	}
	if !f(&rec) {
		return nil // nothing to change
	}
	return n.put(ctx, kv, room, rec, rev)
}

// releaser gives names and places back: each batch is grouped by room,
// one compare-and-set per room. A failure (no quorum) is logged; the
// place is taken back later by Admit's stale check.
func (n *Node) releaser(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.rel.wake:
		}
		items := n.rel.take()
		byRoom := map[string][]string{}
		var order []string
		var markers []chan struct{}
		for _, m := range items {
			if m.done != nil {
				markers = append(markers, m.done)
				continue
			}
			if _, ok := byRoom[m.room]; !ok {
				order = append(order, m.room)
			}
			byRoom[m.room] = append(byRoom[m.room], m.id)
		}
		if kvp := n.kv.Load(); kvp != nil {
			for i, room := range order {
				ids := byRoom[room]
				cctx, cancel := context.WithTimeout(ctx, admitTimeout)
				err := n.modify(cctx, *kvp, room, func(r *record) bool {
					before := len(r.Members)
					r.Members = slices.DeleteFunc(r.Members, func(m member) bool {
						// A peer id outlives a leave (a connection that leaves
						// and joins again keeps it): one back here, or being
						// admitted again, keeps the place it holds now.
						return slices.Contains(ids, m.ID) && !n.heldHere(room, m)
					})
					return len(r.Members) != before
				})
				cancel()
				if err != nil {
					// No quorum, most likely: the rest would wait as long.
					// Admit drops these members later (stale).
					if ctx.Err() == nil {
						n.log.Warn("cluster: names not given back", "rooms", len(order)-i, "error", err)
					}
					break
				}
			}
		}
		for _, d := range markers {
			close(d)
		}
	}
}

// setNode records in the bucket that peer id of room lives on this node
// (after a resume here).
func (n *Node) setNode(ctx context.Context, room, id, name string) {
	kvp := n.kv.Load()
	if kvp == nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, admitTimeout)
	defer cancel()
	err := n.modify(cctx, *kvp, room, func(r *record) bool {
		if i := r.index(id); i >= 0 {
			if r.Members[i].Node == n.id {
				return false
			}
			r.Members[i].Node = n.id
			return true
		}
		r.Members = append(r.Members, member{ID: id, Name: name, Node: n.id})
		return true
	})
	if err != nil {
		n.log.Warn("cluster: resumed peer not recorded", "room", room, "peer", id, "error", err)
	}
}

// openBucket creates the rooms bucket, or raises its replicas to
// min(3, nodes alive) when more nodes have joined since.
func (n *Node) openBucket(ctx context.Context) (jetstream.KeyValue, error) {
	want := min(maxReplicas, n.aliveCount()+1)
	kv, err := n.js.KeyValue(ctx, RoomsBucket)
	switch {
	case err == nil:
		st, serr := kv.Status(ctx)
		if serr != nil {
			// No answer (a leader being elected, no quorum): the bucket
			// stays as it is. Configured from a partial view of the nodes
			// it would lose replicas.
			return kv, nil
		}
		if st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas >= want {
			return kv, nil
		}
	case !errors.Is(err, jetstream.ErrBucketNotFound):
		return nil, err
	}
	return n.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: RoomsBucket, Description: "icebox rooms: members by room",
		History: 1, Storage: jetstream.MemoryStorage, Replicas: want,
	})
}

// load waits for JetStream, opens the bucket and reads every room into
// the signaling server, then marks the node ready. Room events that
// arrive meanwhile wait in the inbound queue (within MaxInboundBytes)
// and are applied afterwards; applying is
// idempotent, so an event already reflected in the records changes
// nothing. false when ctx ended first.
func (n *Node) load(ctx context.Context) bool {
	// Hear the other nodes first, so the bucket gets its replicas and the
	// members of live nodes are not taken for stale.
	select {
	case <-ctx.Done():
		return false
	case <-time.After(n.cfg.HeartbeatInterval + n.cfg.HeartbeatInterval/2):
	}
	for {
		kv, err := n.openBucket(ctx)
		if err == nil {
			n.kv.Store(&kv)
			if err = n.probe(ctx, kv); err == nil {
				err = n.resync(ctx)
			}
			if err == nil {
				n.ready.Store(true)
				n.log.Info("cluster ready", "node", n.id, "nodes", n.aliveCount()+1)
				return true
			}
		}
		n.log.Info("cluster: waiting for JetStream", "error", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
		}
	}
}

// probe writes this node's probe key: the bucket takes writes (its
// stream has a leader and a quorum). The key is no room name (those have
// no dot) and its record has no members.
func (n *Node) probe(ctx context.Context, kv jetstream.KeyValue) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := kv.Put(ctx, "probe."+n.cfg.Name, []byte(`{"m":[]}`))
	return err
}

// resync checks this node's own peers against the room records: a peer
// missing from its record (dropped by the others while this node was cut
// off or paused) is put back and announced again, unless another peer
// took its name meanwhile: then the record's holder keeps the name and
// this node's peer is evicted (signaling.CodeNameLost). Each room's
// record is written back at the revision read, changed or not, so no
// decision stands on a lagging replica's copy. The other nodes' peers
// are learnt from those nodes themselves (askMembers), in order with
// their announcements.
func (n *Node) resync(ctx context.Context) error {
	kvp := n.kv.Load()
	if kvp == nil {
		return ErrUnavailable
	}
	kv := *kvp
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	byRoom := map[string][]signaling.Member{}
	var rooms []string
	for _, m := range n.rooms.Members() {
		if m.Node != "" {
			continue
		}
		if _, ok := byRoom[m.Room]; !ok {
			rooms = append(rooms, m.Room)
		}
		byRoom[m.Room] = append(byRoom[m.Room], m)
	}
	var failed error
	for _, room := range rooms {
		var lost, back []signaling.Member
		err := n.modify(cctx, kv, room, func(r *record) bool {
			lost, back = lost[:0], back[:0]
			for _, m := range byRoom[room] {
				switch {
				case r.index(m.ID) >= 0:
				case slices.ContainsFunc(r.Members, func(o member) bool { return o.Name == m.Name }):
					// The record's holder keeps the name, even one of a node
					// this node still takes for gone (it may be the one cut
					// off): the majority that wrote it decides.
					lost = append(lost, m)
				case !n.rooms.HasLocal(room, m.ID):
					// Left since the list was taken: its release follows.
				default:
					r.Members = append(r.Members, member{ID: m.ID, Name: m.Name, Node: n.id})
					back = append(back, m)
				}
			}
			return true
		})
		if err != nil {
			n.log.Warn("cluster: room not checked against its record", "room", room, "error", err)
			failed = err
			continue
		}
		for _, m := range lost {
			n.rooms.Evict(room, m.ID)
		}
		for _, m := range back {
			if !n.rooms.HasLocal(room, m.ID) {
				// Left while its place was put back: give it back again.
				n.rel.push(outMsg{kind: kindRelease, room: room, id: m.ID}, 0, false, false)
				continue
			}
			n.Joined(room, m.ID, m.Name)
		}
	}
	return failed
}
