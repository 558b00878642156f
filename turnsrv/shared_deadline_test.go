package turnsrv

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// pipeListener hands out the server ends of net.Pipe connections, so a
// shared listener runs inside a synctest bubble on its fake clock.
type pipeListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (p *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-p.ch:
		return c, nil
	case <-p.done:
		return nil, net.ErrClosed
	}
}

func (p *pipeListener) Close() error   { p.once.Do(func() { close(p.done) }); return nil }
func (p *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443} }

// dial connects a client; the server end is accepted.
func (p *pipeListener) dial() net.Conn {
	server, client := net.Pipe()
	p.ch <- server
	return client
}

// TestSharedFirstMessageDeadlineNotRenewed: a connection told apart as
// TURN late in its FirstMessageTimeout (ChannelData, which meets no STUN
// deadline) keeps the deadline it was accepted with: it is closed
// FirstMessageTimeout after accept, not that long again after it was told
// apart. On the fake clock of a synctest bubble.
func TestSharedFirstMessageDeadlineNotRenewed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const firstMsg = 10 * time.Second
		stats := &Stats{}
		set := newConnSet(connLimits{firstMsg: firstMsg, noAlloc: time.Hour}, stats,
			&owners{m: map[fiveTuple]string{}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		ln := newPipeListener()
		l := newSharedListenerOn(ln, nil, nil, nil, set, 0)
		defer set.closeAll()
		defer l.close()

		c := ln.dial()
		defer c.Close()
		time.Sleep(firstMsg - time.Millisecond)
		if _, err := c.Write([]byte("\x40\x00\x00\x04abcd")); err != nil {
			t.Fatalf("ChannelData within the deadline: %v", err)
		}
		// pion/turn's side: accept and read until the connection ends.
		gc, err := sharedTURN{l}.Accept()
		if err != nil {
			t.Fatal(err)
		}
		ended := make(chan error, 1)
		go func() {
			buf := make([]byte, 100)
			for {
				if _, err := gc.Read(buf); err != nil {
					ended <- err
					return
				}
			}
		}()
		time.Sleep(2 * time.Millisecond) // past the deadline from accept
		synctest.Wait()
		select {
		case err := <-ended:
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("read ended with %v, want the first-message deadline", err)
			}
		default:
			t.Fatalf("open %s after accept: the first-message deadline started again when the connection was told apart",
				firstMsg+time.Millisecond)
		}
		gc.Close()
	})
}
