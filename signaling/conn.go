package signaling

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/icebox-project/icebox/internal/clientaddr"
	"github.com/icebox-project/icebox/internal/mintlimit"
	"github.com/icebox-project/icebox/internal/roomname"
	"github.com/icebox-project/icebox/internal/rtc"
	"github.com/icebox-project/icebox/signaling/wire"
)

// conn is one WebSocket connection: a reader goroutine (run) handles
// inbound messages; a writer goroutine (flush) runs only while messages
// are queued, so an idle connection costs one goroutine. done closes when
// the connection starts closing; ended once the close frame is written.
// The room member it speaks for is its peer (peer.go), which outlives it
// when it drops: another connection may take the peer over (resume).
// Goroutines and timers: doc.go.
type conn struct {
	s      *Server
	ws     *websocket.Conn
	remote string
	ip     string // client address key (clientaddr), behind trusted proxies from X-Forwarded-For
	// keys are ip's keys in the connection cap (its IPv6 aggregate too),
	// as counted in; released with them.
	keys clientaddr.Keys
	// out is the connection's queue: its replies and, while its peer is
	// in a room, the peer's messages (peer.out is out); held for the
	// peer when the connection drops.
	out     *outbox
	wmu     sync.Mutex    // held while writing data frames
	ended   chan struct{} // closed once finish has written the close frame
	done    chan struct{}
	limiter *rate.Limiter
	strikes int // reader goroutine only
	// joined is set by the first successful join or resume; until then
	// the join timer may close the connection.
	joined atomic.Bool

	// credID is the TURN user id credentials are minted for: random,
	// never shown to anyone but this client (Config.ICEServers).
	credID string

	// peer is the room member this connection speaks for: a fresh one
	// (in no room) from the start, the suspended one it takes over on a
	// resume. Written under hub.mu by the connection's own handler; read
	// under hub.mu, or by the connection's own goroutines.
	peer *peer

	// slot releases the client address's place in the per-address
	// limit (releaseSlot).
	slot sync.Once

	mu          sync.Mutex // guards the fields below
	closeCode   int
	closeReason string
	// Timers, stopped by closeWith and never started after it.
	refresh   Timer // the next ice-servers push
	pinger    Timer // the next ping
	joinTimer Timer // the join timeout
}

func newConn(s *Server, ws *websocket.Conn, remote, ip string) *conn {
	c := &conn{
		s: s, ws: ws, remote: remote, ip: ip, credID: "peer:" + newToken(),
		out:     newOutbox(&s.queues),
		ended:   make(chan struct{}),
		done:    make(chan struct{}),
		limiter: rate.NewLimiter(MessageRate, MessageBurst),
	}
	c.peer = &peer{id: newID(), out: c.out, conn: c}
	return c
}

const reasonSlow = "too slow: send queue full"

// enqueue queues b, a reply of the connection's own (pong, error,
// ice-servers), for the writer without blocking. A full queue means the
// client cannot keep up; it is disconnected rather than let it stall its
// room.
func (c *conn) enqueue(b []byte) {
	start, ok, _ := c.out.push(queued{b: b})
	if start {
		c.s.tasks.goFunc(c.flush)
	}
	if !ok {
		if c.out.isHeld() {
			// Dropped meanwhile, and its peer suspended: what does not
			// fit its held queue ends the suspension (peer.push).
			c.s.tasks.goFunc(func() { c.s.hub.expireOf(c) })
			return
		}
		c.closeWith(websocket.ClosePolicyViolation, reasonSlow)
	}
}

// releaseSlot gives back the client address's place in the
// per-address limit (Limits.MaxConnectionsPerIP), once: when the
// connection ends, or for a peer suspended then, when the suspension
// ends.
func (c *conn) releaseSlot() {
	c.slot.Do(func() { c.s.perIP.release(c.keys) })
}

// closeWith ends the connection with a close frame carrying code and
// reason. It never blocks; the first call wins.
func (c *conn) closeWith(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeCode != 0 {
		return
	}
	c.closeCode, c.closeReason = code, reason
	for _, t := range []Timer{c.refresh, c.pinger, c.joinTimer} {
		if t != nil {
			t.Stop()
		}
	}
	close(c.done)
	c.s.tasks.goFunc(c.finish)
	// The reader drains until the peer answers the close frame, or until
	// closeGrace; then run closes the socket. Unread input at close time
	// would make the kernel send a reset instead of the close frame.
	_ = c.ws.SetReadDeadline(time.Now().Add(closeGrace))
}

func (c *conn) closing() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *conn) run() {
	c.mu.Lock()
	if c.closeCode == 0 { // Close may have come first.
		c.pinger = c.s.afterFunc(pingPeriod, c.ping)
		c.joinTimer = c.s.afterFunc(c.s.cfg.JoinTimeout, c.joinTimedOut)
	}
	c.mu.Unlock()
	dropped := c.reader()
	c.mu.Lock()
	policyClose := c.closeCode != 0 && c.closeCode != websocket.CloseAbnormalClosure
	c.mu.Unlock()
	// A connection lost without a close frame may come back: its peer is
	// kept for the resume window. A close, a leave or a policy close is
	// final.
	c.s.hub.unregister(c, dropped && !policyClose)
	c.closeWith(websocket.CloseNormalClosure, "")
	<-c.ended
	c.ws.Close()
	c.s.log.Debug("ws closed", "peer", c.peer.id, "remote", c.remote)
}

// flush writes queued messages until the queue is empty, then ends; the
// next enqueue starts another. Once the connection is closing, finish
// writes what is left instead.
func (c *conn) flush() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for {
		if c.closing() {
			c.out.stop()
			return
		}
		q := c.out.next()
		if q == nil {
			return
		}
		for i, m := range q {
			_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, m.b); err != nil {
				n := 0
				for _, m := range q[i:] {
					n += len(m.b)
				}
				c.out.written(n)
				c.closeWith(websocket.CloseAbnormalClosure, "")
				c.ws.Close() // unblocks the reader.
				return
			}
			c.out.written(len(m.b))
		}
	}
}

// ping keeps the connection alive every pingPeriod; gorilla allows
// WriteControl alongside a data write.
func (c *conn) ping() {
	if c.closing() {
		return
	}
	if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
		c.closeWith(websocket.CloseAbnormalClosure, "")
		c.ws.Close() // unblocks the reader.
		return
	}
	c.mu.Lock()
	if c.closeCode == 0 {
		c.pinger = c.s.afterFunc(pingPeriod, c.ping)
	}
	c.mu.Unlock()
}

// joinTimedOut closes a connection that has not joined a room within
// JoinTimeout of opening.
func (c *conn) joinTimedOut() {
	if !c.joined.Load() {
		c.closeWith(websocket.ClosePolicyViolation, "no join in time")
	}
}

// finish writes, after any write in progress, what is still queued (such
// as the error that explains the close), then the close frame, all within
// one writeWait.
func (c *conn) finish() {
	defer close(c.ended)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	code, reason := c.closeCode, c.closeReason
	c.mu.Unlock()
	if code == websocket.CloseAbnormalClosure {
		return
	}
	deadline := time.Now().Add(writeWait)
	_ = c.ws.SetWriteDeadline(deadline)
	// A slow client would not read the backlog anyway; a suspended
	// peer's is held for its resume.
	if reason != reasonSlow && !c.out.isHeld() {
		for _, m := range c.out.take() {
			if c.ws.WriteMessage(websocket.TextMessage, m.b) != nil {
				return
			}
		}
	}
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline)
}

// reader handles inbound messages until the connection ends. dropped is
// true when it ended without a close frame from the peer (a lost network).
func (c *conn) reader() (dropped bool) {
	c.ws.SetReadLimit(hardReadLimit)
	// Until a join, the join timer (not a read deadline) bounds the
	// connection's life.
	c.ws.SetPongHandler(func(string) error {
		if c.s.hub.inRoom(c) {
			_ = c.ws.SetReadDeadline(time.Now().Add(pongWait))
		}
		return nil
	})
	for {
		mt, r, err := c.ws.NextReader()
		if err != nil {
			return c.readFailed(err)
		}
		data, err := io.ReadAll(io.LimitReader(r, MaxSFUMessageSize+1))
		if err != nil {
			return c.readFailed(err)
		}
		if c.closing() {
			continue // draining until the peer's close frame.
		}
		// Only a participant of an SFU room may send the SFU more.
		if len(data) > MaxMessageSize && (len(data) > MaxSFUMessageSize || !toSFU(data) || c.peer.participant() == nil) {
			if _, err := io.Copy(io.Discard, r); err != nil {
				return c.readFailed(err)
			}
			c.refuse(wire.CodeTooLarge, "messages are limited to 65536 bytes (270336 for a signal to the SFU)")
		} else if mt != websocket.TextMessage {
			c.refuse(wire.CodeBadMessage, "protocol v1 uses text frames holding JSON")
		} else if !c.limiter.AllowN(c.s.clock.Now(), 1) {
			c.refuse(wire.CodeRateLimited, "too many messages; slow down")
		} else {
			c.handleOnOwnStack(data)
		}
		if c.strikes >= maxStrikes {
			c.closeWith(websocket.ClosePolicyViolation, "too many refused messages")
			continue
		}
		if c.s.hub.inRoom(c) && !c.closing() {
			_ = c.ws.SetReadDeadline(time.Now().Add(pongWait))
		}
	}
}

func (c *conn) readFailed(err error) (dropped bool) {
	// Out of a room, a read deadline can only pass after a leave (the
	// pongWait of the last message in the room is not renewed): that
	// connection is closed as one that never joined.
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() && !c.closing() && !c.s.hub.inRoom(c) {
		c.closeWith(websocket.ClosePolicyViolation, "no join in time")
		return false
	}
	// gorilla reports a connection lost without a close frame as 1006.
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code == websocket.CloseAbnormalClosure
	}
	return !errors.Is(err, websocket.ErrReadLimit)
}

// toSFU reports whether data is a signal to the SFU, which may be larger
// than other messages (MaxSFUMessageSize).
func toSFU(data []byte) bool {
	var head struct {
		Type string `json:"type"`
		To   string `json:"to"`
	}
	return json.Unmarshal(data, &head) == nil && head.Type == wire.TypeSignal && head.To == wire.SFUPeer
}

// refuse sends an error for a message that counts as a strike.
func (c *conn) refuse(code, message string) {
	c.strikes++
	c.s.stats.error(code)
	c.enqueue(encode(&wire.Error{Code: code, Message: message}))
}

// reply sends an error that does not count as a strike: the message was
// well formed, the request was refused.
func (c *conn) reply(e *wire.Error) {
	c.s.stats.error(e.Code)
	c.enqueue(encode(e))
}

// handleOnOwnStack is handle, on a goroutine of its own while the reader
// waits. Decoding and answering a message takes a deeper stack than
// waiting for the next frame; on the reader it would grow the reader's
// stack to 8 KiB for the rest of the connection (Go halves a stack at a
// collection only when less than a quarter of it is in use, and a reader
// parked in a read is above that line), twice what an idle connection
// needs. Messages are still handled one at a time and in order.
func (c *conn) handleOnOwnStack(data []byte) {
	_, _ = onOwnStack(func() (struct{}, error) {
		c.handle(data)
		return struct{}{}, nil
	})
}

func (c *conn) handle(data []byte) {
	var m inbound
	if err := json.Unmarshal(data, &m); err != nil {
		c.s.stats.message("invalid")
		c.refuse(wire.CodeBadMessage, "not a JSON object: "+err.Error())
		return
	}
	c.s.stats.message(m.Type)
	switch m.Type {
	case wire.TypeJoin:
		c.join(&m)
	case wire.TypeSignal:
		if m.To == "" || !isObject(m.Data) {
			c.refuse(wire.CodeBadMessage, `signal needs "to" (a peer id) and "data" (an object)`)
			return
		}
		signal := c.s.hub.signal
		if m.To == wire.SFUPeer {
			signal = func(c *conn, _ string, data json.RawMessage) *wire.Error { return c.s.signalSFU(c.peer, data) }
		}
		if e := signal(c, m.To, m.Data); e != nil {
			c.reply(e)
			return
		}
	case wire.TypeLayer:
		if e := c.s.layerSFU(c.peer, &m.Layer); e != nil {
			c.reply(e)
			return
		}
	case wire.TypeLeave:
		if !c.s.hub.leave(c) {
			c.reply(&wire.Error{Code: wire.CodeNotJoined, Message: "not in a room"})
			return
		}
		c.stopRefresh()
		c.s.log.Info("peer left", "peer", c.peer.id, "remote", c.remote)
	case wire.TypePing:
		c.enqueue(pongFrame)
	case "":
		c.refuse(wire.CodeBadMessage, `missing "type"`)
		return
	default:
		c.refuse(wire.CodeBadMessage, "unknown type "+quote(m.Type))
		return
	}
	c.strikes = 0
}

func (c *conn) join(m *inbound) {
	if !roomname.Valid(m.Room) {
		c.refuse(wire.CodeBadMessage, "room must be 1 to 64 characters of A-Z a-z 0-9 - _")
		return
	}
	name, ok := cleanName(m.Name)
	if !ok {
		c.refuse(wire.CodeBadMessage, "name must be 1 to 64 printable characters")
		return
	}
	grant, wait, ok := c.takeCredential()
	if !ok {
		c.reply(&wire.Error{Code: wire.CodeRateLimited, Message: fmt.Sprintf("too many TURN credentials requested from your address; try again in %ds", seconds(wait))})
		return
	}
	servers, ttl := c.iceServers()
	if m.Resume != "" && c.resume(m.Resume, m.Room, servers, int64(ttl/time.Second)) {
		c.joined.Store(true)
		c.s.log.Info("peer resumed", "room", m.Room, "peer", c.peer.id, "remote", c.remote)
		c.scheduleRefresh(ttl)
		return
	}
	var roomPassword string
	if c.s.cfg.RoomPassword != nil {
		roomPassword = c.s.cfg.RoomPassword(m.Room)
	}
	if roomPassword != "" {
		if wait := c.s.guesses.blocked(c.keys, m.Room); wait > 0 {
			grant.Return()
			c.reply(&wire.Error{Code: wire.CodeRateLimited, Message: fmt.Sprintf("too many wrong passwords from your address; try again in %ds", seconds(wait))})
			return
		}
	}
	join := c.s.hub.join
	if c.s.hub.cl != nil {
		join = c.s.hub.joinCluster
	}
	e := join(c, m.Room, name, m.Password, c.s.limits(), roomPassword, servers, int64(ttl/time.Second))
	if e != nil {
		// The credentials minted for the welcome are dropped unseen.
		grant.Return()
		if e.Code == wire.CodeBadPassword && m.Password != "" {
			// Each wrong guess from an address waits longer for its answer.
			// An empty password is no guess (it can never match): it only
			// tells a page that the room needs one.
			c.pause(c.s.guesses.failed(c.keys, m.Room))
		}
		c.reply(e)
		return
	}
	c.joined.Store(true)
	if roomPassword != "" {
		c.s.guesses.succeeded(c.keys, m.Room)
	}
	c.s.log.Info("peer joined", "room", m.Room, "peer", c.peer.id, "remote", c.remote)
	if r, epoch, ok := c.s.hub.sfuRoomOf(c.peer); ok {
		c.s.joinSFU(c.peer, r, epoch, false)
	}
	c.scheduleRefresh(ttl)
}

// resume takes over the suspended peer with token: on this node, or on
// another node of the cluster, which hands it over.
func (c *conn) resume(token, room string, servers []rtc.ICEServer, ttl int64) bool {
	if c.s.hub.resume(c, token, room, servers, ttl) {
		return true
	}
	if c.s.hub.cl == nil {
		return false
	}
	ho, err := onOwnStack(func() (Handover, error) {
		if ho, ok := c.s.hub.cl.Resume(token, room); ok {
			return ho, nil
		}
		return Handover{}, errNoHandover
	})
	if err != nil {
		return false
	}
	if !c.s.hub.resumeRemote(c, ho, room, servers, ttl) {
		// Handed over but this connection cannot take it (closing): the
		// peer leaves for good.
		c.s.hub.cl.Left(room, ho.ID)
		return false
	}
	return true
}

var errNoHandover = errors.New("signaling: no node holds the peer")

// takeCredential takes one credential from the client's minting bucket
// (source "ws"); with no ICEServers nothing is minted and nothing taken.
func (c *conn) takeCredential() (mintlimit.Grant, time.Duration, bool) {
	if c.s.cfg.ICEServers == nil {
		return mintlimit.Grant{}, 0, true
	}
	return c.s.cfg.Minting.Take(c.ip, mintlimit.SourceWS)
}

// seconds rounds d up to whole seconds, at least 1 (for Retry-After and
// messages).
func seconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}

// pause holds the reader for d on the server's clock, or until the
// connection starts closing.
func (c *conn) pause(d time.Duration) {
	if d <= 0 {
		return
	}
	over := make(chan struct{})
	t := c.s.afterFunc(d, func() { close(over) })
	select {
	case <-over:
	case <-c.done:
		t.Stop()
	}
}

func (c *conn) iceServers() ([]rtc.ICEServer, time.Duration) {
	if c.s.cfg.ICEServers == nil {
		return []rtc.ICEServer{}, 0
	}
	return c.s.cfg.ICEServers(c.credID)
}

// scheduleRefresh pushes fresh credentials at 80% of ttl, so a peer
// always holds credentials valid for new allocations (ICE restarts).
func (c *conn) scheduleRefresh(ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeCode != 0 {
		return
	}
	if c.refresh != nil {
		c.refresh.Stop()
	}
	c.refresh = c.s.afterFunc(ttl*8/10, func() {
		if !c.s.hub.inRoom(c) {
			return
		}
		if _, wait, ok := c.takeCredential(); !ok {
			// Over the minting limit: the current credentials are still
			// valid for 20% of ttl; try again once a token is there.
			c.scheduleRefresh(wait * 10 / 8)
			return
		}
		servers, ttl := c.iceServers()
		c.enqueue(encode(&wire.ICEServers{ICEServers: servers, TTL: int64(ttl / time.Second)}))
		c.scheduleRefresh(ttl)
	})
}

func (c *conn) stopRefresh() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refresh != nil {
		c.refresh.Stop()
		c.refresh = nil
	}
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	b, _ := json.Marshal(s)
	return string(b)
}
