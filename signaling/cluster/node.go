package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/icebox-project/icebox/internal/ratelog"
	"github.com/icebox-project/icebox/internal/relayrange"
	"github.com/icebox-project/icebox/internal/roomname"
	"github.com/icebox-project/icebox/signaling"
)

// Timings. DeadAfter is several heartbeats, so one lost or late heartbeat
// never ends a node; a dead node's peers leave within DeadAfter plus one
// HeartbeatInterval (the liveness check runs at each heartbeat).
const (
	DefaultHeartbeatInterval = time.Second
	DefaultDeadAfter         = 5 * time.Second
	// admitTimeout bounds one join's admission (every compare-and-set
	// retry included).
	admitTimeout = 5 * time.Second
	// DefaultResumeTimeout bounds the wait for a node holding a suspended
	// peer.
	DefaultResumeTimeout = time.Second
	// The queues' bounds are in queue.go.
)

// Rooms is what a Node drives on its signaling server:
// *signaling.Server.
type Rooms interface {
	RemoteJoined(room, id, name, node string)
	RemoteAdmitted(room, id, name, node string) (localHolder bool)
	Evict(room, id string) bool
	RemoteLeft(room, id string)
	RemoteMoved(room, id, name, node string)
	RemoteSignal(room, from, to string, data json.RawMessage) (forward string, ok bool)
	RemoteSFU(room, peer, node string, frame []byte) bool
	NodeGone(node string) []signaling.Member
	RemoteLeftOf(room, id, node string) bool
	HandOver(token, room, node string) (signaling.Handover, bool)
	HasLocal(room, id string) bool
	WithLocal(f func(local []signaling.Member))
	Members() []signaling.Member
	Counts() (conns, rooms, peers int)
}

// Config configures a Node.
type Config struct {
	// Name is the node's name, unique in the cluster (cluster.node).
	Name string
	// Secret is the cluster secret: this node's messages are signed, and
	// the others' checked, with keys derived from it (auth.go). Required.
	Secret string
	// Conn is the node's connection to NATS; the Node owns it from New
	// and closes it in Close. It must not echo the node's own messages
	// back (nats.NoEcho), which Connect and ConnectEmbedded arrange.
	Conn *nats.Conn
	// Relay is this node's TURN relayed address and relay ports, told to
	// the other nodes so that their peer filters let the two relays
	// reach each other.
	Relay relayrange.RelayRange
	// HeartbeatInterval, DeadAfter and ResumeTimeout: zero values are the
	// defaults.
	HeartbeatInterval, DeadAfter, ResumeTimeout time.Duration
	// ObserveLatency, when set, is told the delivery time of each signal
	// from another node (its send time to its arrival here, clocks as the
	// nodes keep them).
	ObserveLatency func(time.Duration)
	// Logger: nil is slog.Default().
	Logger *slog.Logger
}

// Node is one icebox's membership of the cluster. It implements
// signaling.Cluster. Build it with New, give it to signaling.New, then
// Start it with the signaling server.
type Node struct {
	cfg   Config
	id    string // Name@incarnation
	log   *slog.Logger
	nc    *nats.Conn
	js    jetstream.JetStream
	kv    atomic.Pointer[jetstream.KeyValue]
	rooms Rooms
	stats Stats
	ready atomic.Bool
	start time.Time

	out queue[outMsg] // announcements and signals, in order; MaxOutboundBytes
	rel queue[outMsg] // names and places to give back in the bucket
	// in is where nats.go delivers, inq where the messages wait to be
	// applied (MaxInboundBytes): forward moves them from one to the other.
	in   chan *nats.Msg
	inq  queue[*nats.Msg]
	subs []*nats.Subscription
	// lastResync is when the sender (out) and the receiver (in) last
	// recovered from a dropped room event (resync.go).
	lastResync struct{ out, in time.Time }
	// drops logs dropped messages at a bounded rate.
	drops *ratelog.Logger
	// hand holds the hand-overs to this node under way and the signals
	// waiting for them (handover.go).
	hand handovers

	sign   signer   // this node's messages
	verify verifier // the others'

	mu sync.Mutex
	// nodes are the other nodes heard of, by id.
	nodes map[string]*peerNode
	// pending are peers admitted here but not yet announced (Joined or
	// Left not called yet): never stale in the bucket.
	pending map[string]struct{}
	// onNodes is told the live nodes' relay ranges whenever they change.
	onNodes func([]relayrange.RelayRange)
	// syncing collects, by node, the peers listed so far in a members
	// answer of several parts.
	syncing map[string]map[string]bool
	// unlistedPeers holds, by id, the peers a members answer left out
	// that wait to leave (unlisted); a move heard meanwhile takes one out.
	unlistedPeers map[string]bool
	// afterFunc, when set (tests; under mu), replaces time.AfterFunc in
	// unlisted.
	afterFunc func(time.Duration, func()) *time.Timer
	// lastSweep is when the liveness check last ran (heartbeats).
	lastSweep time.Time
	// resyncing is set while a resync started by reconcile runs;
	// resyncAgain when another was asked for meanwhile.
	resyncing, resyncAgain bool

	stop   context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

// peerNode is what a Node knows of another node.
type peerNode struct {
	id    string
	name  string
	relay relayrange.RelayRange
	peers int
	// lastSeen is when it was last known alive: heard here (lastHeard),
	// or heard by another live node (vouch.go). DeadAfter past it, it
	// is taken for gone.
	lastSeen time.Time
	// lastHeard is when its last heartbeat arrived here; zero before
	// the first.
	lastHeard time.Time
	// firstSeen is when this node first heard of it.
	firstSeen time.Time
	dead      bool
	// goneAt is when it was last taken for gone by silence.
	goneAt time.Time
	// stopped: it said it is stopping (a last heartbeat, Gone); no
	// other node's word brings it back.
	stopped bool
}

// New builds a Node on cfg.Conn. Nothing is sent before Start.
func New(cfg Config) (*Node, error) {
	if cfg.Conn == nil {
		return nil, errors.New("cluster: no NATS connection")
	}
	if cfg.Secret == "" {
		return nil, errors.New("cluster: no secret")
	}
	if !roomname.Valid(cfg.Name) {
		return nil, fmt.Errorf("cluster: node name %q: 1 to %d characters of A-Z a-z 0-9 - _", cfg.Name, roomname.MaxLength)
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = DefaultDeadAfter
	}
	if cfg.ResumeTimeout <= 0 {
		cfg.ResumeTimeout = DefaultResumeTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("cluster: jetstream: %w", err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	n := &Node{cfg: cfg, id: cfg.Name + "@" + hex.EncodeToString(b), log: cfg.Logger, nc: cfg.Conn, js: js,
		in: make(chan *nats.Msg, inboundHandoff), nodes: map[string]*peerNode{}, pending: map[string]struct{}{}}
	n.sign.id, n.sign.key = n.id, messageKey(cfg.Secret, n.id)
	n.verify.secret = cfg.Secret
	n.out.init(MaxOutboundBytes, closeMarker)
	n.rel.init(0, closeMarker)
	n.inq.init(MaxInboundBytes, nil)
	n.hand.init()
	n.drops = ratelog.New(cfg.Logger, 0, nil)
	cfg.Conn.SetReconnectHandler(func(*nats.Conn) { n.reconnected() })
	// nats.go drops what arrives while the hand-off channel is full (a
	// slow consumer): whatever it was, the node asks the others again.
	prev := cfg.Conn.ErrorHandler()
	cfg.Conn.SetErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrSlowConsumer) && sub != nil && sub.Type() == nats.ChanSubscription {
			n.inq.markLost()
			n.stats.dropIn("handoff")
		}
		if prev != nil {
			prev(nc, sub, err)
		}
	})
	return n, nil
}

// ID is this node's id: its name, "@" and its incarnation.
func (n *Node) ID() string { return n.id }

// Name is this node's name.
func (n *Node) Name() string { return n.cfg.Name }

// OnNodes sets f to be told the relay ranges of the live other nodes each
// time they change (a node appears, changes or goes). Call before Start.
func (n *Node) OnNodes(f func([]relayrange.RelayRange)) { n.onNodes = f }

// Start subscribes, starts the heartbeats and, in the background, waits
// for JetStream, loads every room into rooms and then serves (Ready turns
// true). Joins before that are refused as unavailable. It returns once
// the subscriptions are in place. ctx ends everything, as Close does.
func (n *Node) Start(ctx context.Context, rooms Rooms) error {
	n.rooms = rooms
	n.start = time.Now()
	for _, subj := range []string{subjRooms, subjNode(n.id), subjHeartbeat, subjSync(n.id)} {
		sub, err := n.nc.ChanSubscribe(subj, n.in)
		if err != nil {
			return fmt.Errorf("cluster: subscribe %s: %w", subj, err)
		}
		n.subs = append(n.subs, sub)
	}
	sub, err := n.nc.Subscribe(subjResume, n.handleResume)
	if err != nil {
		return fmt.Errorf("cluster: subscribe %s: %w", subjResume, err)
	}
	n.subs = append(n.subs, sub)
	if sub, err = n.nc.Subscribe(subjMembers(n.id), n.handleMembers); err != nil {
		return fmt.Errorf("cluster: subscribe %s: %w", subjMembers(n.id), err)
	}
	n.subs = append(n.subs, sub)
	ctx, n.stop = context.WithCancel(ctx)
	n.wg.Go(func() { n.forward(ctx) })
	n.wg.Go(func() { n.send(ctx) })
	n.wg.Go(func() { n.heartbeats(ctx) })
	n.wg.Go(func() {
		if !n.load(ctx) {
			return
		}
		n.wg.Go(func() { n.releaser(ctx) })
		n.receive(ctx)
	})
	return nil
}

// Ready reports whether the node admits joins: JetStream answers and the
// rooms are loaded.
func (n *Node) Ready() bool { return n.ready.Load() }

// Connected reports whether the NATS connection is up.
func (n *Node) Connected() bool { return n.nc.IsConnected() }

// Close tells the other nodes this node is gone (its peers leave at once
// on them), gives its peers' names and places back in the bucket, and
// closes the NATS connection. Call it after the signaling server has
// closed, so every local peer has left. It waits up to ctx for that.
func (n *Node) Close(ctx context.Context) error {
	if n.closed.Swap(true) {
		return nil
	}
	if n.stop == nil { // never started
		n.nc.Close()
		return nil
	}
	// Whatever is queued (the last peer-left announcements) goes first,
	// then the farewell.
	n.queueOut(outMsg{subject: subjHeartbeat, data: n.heartbeat(true), kind: kindHeartbeat})
	sent := flushed(&n.out)
	select {
	case <-sent:
	case <-ctx.Done():
	}
	released := flushed(&n.rel)
	select {
	case <-released:
	case <-ctx.Done():
	}
	_ = n.nc.FlushWithContext(ctx)
	n.stop()
	n.out.drain(closeMarker)
	n.rel.drain(closeMarker)
	n.inq.drain(func(*nats.Msg) {})
	n.drops.Flush()
	for _, s := range n.subs {
		_ = s.Unsubscribe()
	}
	n.wg.Wait()
	n.nc.Close()
	return ctx.Err()
}
