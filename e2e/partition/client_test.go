//go:build linux

package partition

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/icebox-project/icebox/signaling/sigclient"
	"github.com/icebox-project/icebox/signaling/wire"
)

// An ev is one thing a client saw or did, at the time it saw or did it.
type ev struct {
	At   time.Time
	Kind string // evWelcome, evJoined, evLeft, evSignal, evSent, evError, evLeave, evDrop, evClosed
	// ID is the client's own id (welcome) or the peer's (joined, left).
	ID, Name string
	Peers    []peerInfo // welcome
	Resumed  bool       // welcome
	// A signal's sender as the server set it, and its payload's claims.
	From string
	Sig  sigData
	Code string // error
}

const (
	evWelcome = "welcome"
	evJoined  = "peer-joined"
	evLeft    = "peer-left"
	evSignal  = "signal"
	evSent    = "sent"   // this client sent a signal
	evError   = "error"  // an error frame
	evLeave   = "leave"  // this client sent leave
	evDrop    = "drop"   // this client cut its connection, to resume
	evClosed  = "closed" // the connection ended
)

type peerInfo = wire.PeerInfo

// sigData is what test signals carry: a unique id and who the sender
// meant, so that the checker can tell a duplicate or a misdelivery.
type sigData struct {
	UID    string `json:"uid"`
	FromID string `json:"fromId"`
	ToID   string `json:"toId"`
}

// client is one WebSocket client of protocol v1 on a node, recording
// its history.
type client struct {
	label string // unique in the run: "<node>/<n>"
	node  *node
	room  string

	mu      sync.Mutex
	hist    []ev
	conn    *sigclient.Client
	id      string // while joined
	name    string
	token   string
	view    map[string]string // peer id → name, as this client knows its room
	replies chan joinAnswer   // welcome or error, for a join waiting
	// joins are the names of the joins sent on this connection and not
	// answered yet, oldest first: a welcome is recorded under the name of
	// the join it answers, which a join that gave up waiting (and a
	// newer join after it) may not be.
	joins   []pendingJoin
	joinSeq int
	seq     int
}

// pendingJoin is a join sent and not answered yet.
type pendingJoin struct {
	seq  int
	name string
}

// joinAnswer is the welcome or error answering the join numbered seq
// (-1: none was waiting).
type joinAnswer struct {
	seq int
	m   wire.Message
}

func newClient(n *node, label, room string) *client {
	return &client{label: label, node: n, room: room, view: map[string]string{}}
}

func (c *client) recordLocked(e ev) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	c.hist = append(c.hist, e)
}

func (c *client) history() []ev {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ev(nil), c.hist...)
}

// dial opens a WebSocket to the client's node, from inside the node's
// namespace (faults between nodes never touch it), through sigclient.
func (c *client) dial(ctx context.Context) error {
	d := &websocket.Dialer{NetDialContext: c.node.host.DialContext, HandshakeTimeout: 5 * time.Second}
	conn, err := sigclient.Dial(ctx, "ws://"+net.JoinHostPort(c.node.host.Addr.String(), "8080")+"/ws",
		sigclient.DialOptions{Dialer: d, Buffer: 256})
	if err != nil {
		return err
	}
	replies := make(chan joinAnswer, 4)
	c.mu.Lock()
	c.conn, c.replies, c.joins = conn, replies, nil
	c.mu.Unlock()
	go c.read(conn, replies)
	return nil
}

// read records what arrives on conn until it ends.
func (c *client) read(conn *sigclient.Client, replies chan joinAnswer) {
	// connID is the last id welcomed on conn: signals in flight after a
	// leave, or after the client dropped conn, still reach it.
	connID := ""
	for {
		m, err := conn.Receive(context.Background())
		if err != nil {
			if errors.Is(err, wire.ErrMalformed) {
				continue
			}
			c.mu.Lock()
			if c.conn == conn {
				c.recordLocked(ev{Kind: evClosed, ID: c.id, Code: err.Error()})
				c.conn, c.id = nil, ""
				clear(c.view)
			}
			c.mu.Unlock()
			return
		}
		reply, answered := false, pendingJoin{}
		c.mu.Lock()
		if c.conn != conn {
			// Read from a connection the client has dropped since (sigclient
			// buffers what arrived before): a signal was delivered, to the
			// peer conn held; nothing else concerns the client any more.
			if m, ok := m.(*wire.Signal); ok {
				c.recordLocked(ev{Kind: evSignal, ID: connID, From: m.From, Sig: sigOf(m)})
			}
			c.mu.Unlock()
			continue
		}
		switch m := m.(type) {
		case *wire.Welcome:
			answered = c.answeredLocked()
			c.name = answered.name
			c.id, c.token, connID = m.ID, m.Resume, m.ID
			clear(c.view)
			for _, p := range m.Peers {
				c.view[p.ID] = p.Name
			}
			c.recordLocked(ev{Kind: evWelcome, ID: m.ID, Name: c.name, Peers: m.Peers, Resumed: m.Resumed})
			reply = true
		case *wire.PeerJoined:
			c.view[m.ID] = m.Name
			c.recordLocked(ev{Kind: evJoined, ID: m.ID, Name: m.Name})
		case *wire.PeerLeft:
			delete(c.view, m.ID)
			c.recordLocked(ev{Kind: evLeft, ID: m.ID})
		case *wire.Signal:
			c.recordLocked(ev{Kind: evSignal, ID: connID, From: m.From, Sig: sigOf(m)})
		case *wire.Error:
			e := ev{Kind: evError, ID: c.id, Code: m.Code, Name: m.Message}
			if m.Code == wire.CodeNameLost {
				// Evicted: the client is out of the room, its connection open.
				c.id = ""
				clear(c.view)
			}
			c.recordLocked(e)
			// Errors about signals, or an eviction, answer no join: taken
			// for a join's answer, the join would give up while its welcome
			// is on the way.
			switch m.Code {
			case wire.CodeSignalDropped, wire.CodeUnknownPeer, wire.CodeNotJoined, wire.CodeNameLost, wire.CodeTooLarge:
			default:
				answered = c.answeredLocked()
				reply = true
			}
		}
		c.mu.Unlock()
		if reply {
			select {
			case replies <- joinAnswer{answered.seq, m}:
			default:
			}
		}
	}
}

// sigOf is what a test signal carries.
func sigOf(m *wire.Signal) sigData {
	var d sigData
	_ = json.Unmarshal(m.Data, &d)
	return d
}

// answeredLocked takes the oldest unanswered join off c.joins (seq -1
// and c.name when none is waiting). c.mu is held.
func (c *client) answeredLocked() pendingJoin {
	if len(c.joins) == 0 {
		return pendingJoin{seq: -1, name: c.name}
	}
	pj := c.joins[0]
	c.joins = c.joins[1:]
	return pj
}

var errRefused = errors.New("join refused")

// join dials when needed, joins as name (resuming with the last token
// when resume is set) and waits for the welcome. A refusal is
// errRefused wrapped with its code.
func (c *client) join(ctx context.Context, name string, resume bool) error {
	c.mu.Lock()
	conn, token := c.conn, c.token
	c.mu.Unlock()
	if conn == nil {
		if err := c.dial(ctx); err != nil {
			return err
		}
	}
	j := &wire.Join{Room: c.room, Name: name}
	if resume {
		j.Resume = token
	}
	c.mu.Lock()
	conn, replies := c.conn, c.replies
	if conn == nil {
		c.mu.Unlock()
		return errors.New("connection closed")
	}
	// c.name changes with the welcome that answers this join (a refused
	// one leaves the client under the name it holds).
	seq := c.joinSeq
	c.joinSeq++
	c.joins = append(c.joins, pendingJoin{seq: seq, name: name})
	err := conn.Send(j)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case a := <-replies:
			if a.seq != seq {
				continue // the answer to a join that gave up waiting
			}
			if e, ok := a.m.(*wire.Error); ok {
				return fmt.Errorf("%w: %s: %s", errRefused, e.Code, e.Message)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout:
			return errors.New("no answer to join within 10s")
		}
	}
}

// leave sends leave and forgets the room.
func (c *client) leave() {
	c.mu.Lock()
	conn := c.conn
	if conn == nil || c.id == "" {
		c.mu.Unlock()
		return
	}
	c.recordLocked(ev{Kind: evLeave, ID: c.id})
	c.id = ""
	clear(c.view)
	c.mu.Unlock()
	_ = conn.Send(&wire.Leave{})
}

// drop cuts the connection without a word (a network loss), keeping the
// resume token.
func (c *client) drop() {
	c.mu.Lock()
	conn := c.conn
	if conn != nil {
		c.recordLocked(ev{Kind: evDrop, ID: c.id})
		c.conn, c.id = nil, ""
		clear(c.view)
	}
	c.mu.Unlock()
	if conn != nil {
		_ = conn.Conn().UnderlyingConn().Close()
	}
}

// close ends the connection for good.
func (c *client) close() {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		c.leave()
		_ = conn.Close()
		c.mu.Lock()
		if c.conn == conn {
			c.recordLocked(ev{Kind: evClosed, ID: c.id})
			c.conn, c.id = nil, ""
			clear(c.view)
		}
		c.mu.Unlock()
	}
}

// signalSome sends one signal to each peer in the client's view.
func (c *client) signalSome() {
	c.mu.Lock()
	conn, id := c.conn, c.id
	var to []string
	for p := range c.view {
		to = append(to, p)
	}
	c.mu.Unlock()
	if conn == nil || id == "" {
		return
	}
	for _, p := range to {
		c.mu.Lock()
		c.seq++
		d := sigData{UID: fmt.Sprintf("%s#%d", c.label, c.seq), FromID: id, ToID: p}
		c.recordLocked(ev{Kind: evSent, ID: id, Sig: d})
		c.mu.Unlock()
		if conn.Signal(p, d) != nil {
			return
		}
	}
}

// joined reports the client's id, "" when it is in no room.
func (c *client) joined() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// peers is the client's view of its room: peer id → name.
func (c *client) peers() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]string, len(c.view))
	for k, v := range c.view {
		m[k] = v
	}
	return m
}
