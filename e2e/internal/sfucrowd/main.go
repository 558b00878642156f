// Command sfucrowd joins a crowd of pion peers to a room of icebox whose
// media is sfu, for e2e tests that need more participants than their own
// process should carry beside browsers: each peer publishes a VP8
// simulcast camera (sfutest.Peer.PublishSimulcast: the q, h and f clips
// of sfu/testdata) and receives what the SFU forwards.
//
//	sfucrowd -ws ws://127.0.0.1:8080/ws -room twelve -n 10 -prefix pion
//
// The peers are named <prefix>00, <prefix>01, …. Standard output carries
// one JSON object per line:
//
//	{"joined":{"pion00":"<peer id>",…}}            once, when all have joined and offered
//	{"video":{"<peer id>":{"<publisher id>":N,…}}} every 500 ms: video packets received, by publisher
//	{"error":"…"}                                  a failure; a fatal one ends the program with status 1
//
// It runs until its standard input closes, then leaves the room.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/icebox-project/icebox/internal/sfutest"
)

// Line is one line of standard output.
type Line struct {
	Joined map[string]string           `json:"joined,omitempty"`
	Video  map[string]map[string]int64 `json:"video,omitempty"`
	Error  string                      `json:"error,omitempty"`
}

// crowd is the program's sfutest.TB: failures become error lines.
type crowd struct {
	mu       sync.Mutex
	out      *json.Encoder
	cleanups []func()
}

func (c *crowd) emit(l Line) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.out.Encode(l)
}

func (c *crowd) Helper() {}

func (c *crowd) Errorf(format string, args ...any) { c.emit(Line{Error: fmt.Sprintf(format, args...)}) }

func (c *crowd) Fatalf(format string, args ...any) {
	c.Errorf(format, args...)
	os.Exit(1)
}

func (c *crowd) Fatal(args ...any) { c.Fatalf("%s", fmt.Sprint(args...)) }

func (c *crowd) Cleanup(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cleanups = append(c.cleanups, f)
}

// leave runs the cleanups, last first, as a test's are.
func (c *crowd) leave() {
	c.mu.Lock()
	fs := c.cleanups
	c.cleanups = nil
	c.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

func main() {
	ws := flag.String("ws", "", "icebox's signaling URL (ws://host:port/ws)")
	room := flag.String("room", "", "the room to join; its media must be sfu")
	n := flag.Int("n", 10, "how many peers")
	prefix := flag.String("prefix", "pion", "the peers' names: <prefix>00, <prefix>01, …")
	flag.Parse()
	if *ws == "" || *room == "" || *n < 1 || *n > 100 {
		fmt.Fprintln(os.Stderr, "sfucrowd: -ws and -room are required, and -n is 1 to 100")
		os.Exit(2)
	}
	c := &crowd{out: json.NewEncoder(os.Stdout)}
	joined := map[string]string{}
	var peers []*sfutest.Peer
	for i := range *n {
		name := fmt.Sprintf("%s%02d", *prefix, i)
		p, w := sfutest.Dial(c, *ws, *room, name)
		if w.Media != "sfu" {
			c.Fatalf("%s: welcome says media %q, want sfu", name, w.Media)
		}
		p.PublishSimulcast()
		joined[name] = p.ID
		peers = append(peers, p)
	}
	c.emit(Line{Joined: joined})
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			c.leave()
			return
		case <-tick.C:
			v := map[string]map[string]int64{}
			for _, p := range peers {
				v[p.ID] = p.Video()
			}
			c.emit(Line{Video: v})
		}
	}
}
