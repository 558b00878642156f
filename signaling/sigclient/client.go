// Package sigclient is a Go client of icebox's signaling, protocol v1
// (docs/protocol.md) over GET /ws: Dial, Join, Send and a typed Receive,
// with the messages of signaling/wire. Tests, benchmarks and the NAT
// lab's peers speak /ws through it.
//
//	c, err := sigclient.Dial(ctx, "wss://host/ws", sigclient.DialOptions{Origin: "https://host"})
//	w, err := c.Join(ctx, wire.Join{Room: "k3Xf9aQ2pLm", Name: "alice"})
//	err = c.Signal(w.Peers[0].ID, map[string]any{"description": offer})
//	m, err := c.Receive(ctx) // *wire.Signal, *wire.PeerJoined, …, *wire.Unknown
//	c.Close()
package sigclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/icebox-project/icebox/signaling/wire"
)

const (
	// DefaultBuffer is how many received frames wait for Receive when
	// DialOptions.Buffer is 0.
	DefaultBuffer = 16
	// ReadLimit is the largest frame read, 1 MiB, as the server's own
	// hard limit; a larger one ends the connection (close 1009).
	ReadLimit = 1 << 20
	// WriteWait bounds each write: a Send that cannot finish within 10 s
	// fails, and the connection is unusable after it.
	WriteWait = 10 * time.Second
)

// DialOptions configure Dial. The zero value dials with
// websocket.DefaultDialer and no Origin.
type DialOptions struct {
	// Origin is sent as the Origin header. "": none, which the server
	// allows (a client that is not a browser); a browser's page sends
	// its own scheme://host.
	Origin string
	// Header holds further request headers, such as X-Forwarded-For
	// through a trusted proxy. Nil: none.
	Header http.Header
	// Dialer opens the connection: TLS, the network dial, buffer sizes,
	// the handshake timeout. Nil: websocket.DefaultDialer.
	Dialer *websocket.Dialer
	// Buffer is how many received frames wait for Receive. While it is
	// full the client reads no more, so a server's queue for a client
	// that does not call Receive fills as for any slow reader. Zero:
	// DefaultBuffer.
	Buffer int
}

// DialError is a failed Dial. StatusCode is the HTTP status of a refused
// upgrade (403 for a foreign Origin, 429 past a per-address limit), 0
// when no HTTP answer came.
type DialError struct {
	URL        string
	StatusCode int
	Err        error
}

func (e *DialError) Error() string {
	if e.StatusCode != 0 {
		return fmt.Sprintf("sigclient: dial %s: HTTP %d: %v", e.URL, e.StatusCode, e.Err)
	}
	return fmt.Sprintf("sigclient: dial %s: %v", e.URL, e.Err)
}

func (e *DialError) Unwrap() error { return e.Err }

// frame is one received data frame, or the error that ended reading.
type frame struct {
	text bool
	b    []byte
}

// Client is one /ws connection. Send and Signal may be called from any
// goroutine; Receive and Join from one goroutine at a time.
type Client struct {
	conn   *websocket.Conn
	wmu    sync.Mutex // one data writer at a time (gorilla)
	frames chan frame // closed when reading ends; then err says why
	err    error      // set before frames is closed
	// closed is closed by Close, so a reader blocked on a full frames
	// ends too.
	closed    chan struct{}
	closeOnce sync.Once
	// held are messages Join read before its answer, for Receive.
	held []wire.Message
}

// Dial opens a WebSocket to url (ws:// or wss://, path /ws) and starts
// reading. ctx bounds the handshake only. Errors are *DialError.
func Dial(ctx context.Context, url string, opts DialOptions) (*Client, error) {
	d := opts.Dialer
	if d == nil {
		d = websocket.DefaultDialer
	}
	h := opts.Header.Clone()
	if opts.Origin != "" {
		if h == nil {
			h = http.Header{}
		}
		h.Set("Origin", opts.Origin)
	}
	conn, resp, err := d.DialContext(ctx, url, h)
	if err != nil {
		de := &DialError{URL: url, Err: err}
		if resp != nil {
			de.StatusCode = resp.StatusCode
		}
		return nil, de
	}
	n := opts.Buffer
	if n <= 0 {
		n = DefaultBuffer
	}
	c := &Client{conn: conn, frames: make(chan frame, n), closed: make(chan struct{})}
	conn.SetReadLimit(ReadLimit)
	go c.read()
	return c, nil
}

// read moves frames to c.frames until the connection ends. It ends with
// the connection: a close frame, a failed read, Close.
func (c *Client) read() {
	for {
		mt, b, err := c.conn.ReadMessage()
		if err != nil {
			c.err = fmt.Errorf("sigclient: connection ended: %w", err)
			close(c.frames)
			return
		}
		select {
		case c.frames <- frame{text: mt == websocket.TextMessage, b: b}:
		case <-c.closed:
			c.err = errors.New("sigclient: closed")
			close(c.frames)
			return
		}
	}
}

// Send writes m as one text frame. Safe for concurrent use.
func (c *Client) Send(m wire.Message) error {
	b, err := wire.Marshal(m)
	if err != nil {
		return fmt.Errorf("sigclient: encode %s: %w", m.MessageType(), err)
	}
	return c.SendRaw(b)
}

// SendRaw writes b as one text frame, unchecked: for tests that send
// what the protocol forbids. Safe for concurrent use.
func (c *Client) SendRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(WriteWait))
	if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		return fmt.Errorf("sigclient: send: %w", err)
	}
	return nil
}

// Signal sends data, encoded as JSON (a json.RawMessage as it is), to
// peer to: {"type":"signal","to":…,"data":…}. data must encode to an
// object, or the server refuses it (bad-message).
func (c *Client) Signal(to string, data any) error {
	raw, ok := data.(json.RawMessage)
	if !ok {
		var err error
		if raw, err = json.Marshal(data); err != nil {
			return fmt.Errorf("sigclient: encode signal data: %w", err)
		}
	}
	return c.Send(&wire.Signal{To: to, Data: raw})
}

// Join sends j and waits for its answer: the Welcome, or the refusal as
// a *wire.Error (Code: wire.CodeNameTaken, wire.CodeRoomFull, …), or
// ctx's error, or the connection's end. Messages that come before the
// answer (a pong, a signal-dropped error) are kept for Receive, in order.
func (c *Client) Join(ctx context.Context, j wire.Join) (*wire.Welcome, error) {
	if err := c.Send(&j); err != nil {
		return nil, err
	}
	var before []wire.Message
	defer func() { c.held = append(c.held, before...) }()
	for {
		m, err := c.next(ctx)
		if err != nil {
			return nil, err
		}
		switch m := m.(type) {
		case *wire.Welcome:
			return m, nil
		case *wire.Error:
			if m.Code != wire.CodeSignalDropped {
				return nil, m
			}
		}
		before = append(before, m)
	}
}

// Receive returns the next message: a pointer to a wire type (an
// *wire.Error is returned as a message, not as the error), or an
// *wire.Unknown for a type wire does not know. Errors: ctx's, after
// which the connection stays usable; a frame that is no message
// (wrapping wire.ErrMalformed), also; and the connection's end, which
// every later call returns too (it wraps *websocket.CloseError when the
// server sent a close frame: errors.As gives its code).
func (c *Client) Receive(ctx context.Context) (wire.Message, error) {
	if len(c.held) > 0 {
		m := c.held[0]
		c.held = c.held[1:]
		return m, nil
	}
	return c.next(ctx)
}

func (c *Client) next(ctx context.Context) (wire.Message, error) {
	select {
	case f, ok := <-c.frames:
		if !ok {
			return nil, c.err
		}
		if !f.text {
			return nil, fmt.Errorf("%w: a binary frame (protocol v1 uses text)", wire.ErrMalformed)
		}
		return wire.Decode(f.b)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Conn is the WebSocket, for tests that write what the protocol forbids
// (binary frames, floods) or end the TCP connection without a close
// frame. Reading is the Client's: never read from Conn.
func (c *Client) Conn() *websocket.Conn { return c.conn }

// Close sends a close frame (1000, normal closure: the server ends the
// peer at once, no resume) and closes the connection. Receive then
// returns the connection's end. Close may be called more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	err := c.conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	if cerr := c.conn.Close(); err == nil || errors.Is(err, websocket.ErrCloseSent) {
		err = cerr
	}
	return err
}
