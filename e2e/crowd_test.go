package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// crowd is e2e/internal/sfucrowd running: pion peers in a process of
// their own, each publishing a VP8 simulcast camera in an SFU room.
type crowd struct {
	// IDs are the peers' ids, by name.
	IDs map[string]string

	mu     sync.Mutex
	video  map[string]map[string]int64 // the last report: packets by receiver, then publisher
	errors []string
}

// crowdLine is one line of sfucrowd's standard output.
type crowdLine struct {
	Joined map[string]string           `json:"joined"`
	Video  map[string]map[string]int64 `json:"video"`
	Error  string                      `json:"error"`
}

// startCrowd joins n sfucrowd peers, named prefix00 on, to room through
// the signaling URL ws and returns once all have joined and offered. A
// failure the crowd reports fails t; the peers leave when t ends.
func startCrowd(t *testing.T, ws, room, prefix string, n int) *crowd {
	t.Helper()
	bin := buildBinary(t, "./internal/sfucrowd")
	cmd := exec.Command(bin, "-ws", ws, "-room", room, "-prefix", prefix, "-n", fmt.Sprint(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &crowd{video: map[string]map[string]int64{}}
	joined := make(chan map[string]string, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var l crowdLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				l.Error = fmt.Sprintf("a line that is not JSON: %q", sc.Text())
			}
			c.mu.Lock()
			if l.Joined != nil {
				joined <- l.Joined
			}
			if l.Video != nil {
				c.video = l.Video
			}
			if l.Error != "" {
				c.errors = append(c.errors, l.Error)
			}
			c.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("sfucrowd did not leave within 15 s of its input closing")
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, e := range c.errors {
			t.Errorf("sfucrowd: %s", e)
		}
		if st := cmd.ProcessState; st != nil && !st.Success() {
			t.Errorf("sfucrowd: %s\n%s", st, stderr.String())
		}
	})
	select {
	case c.IDs = <-joined:
		return c
	case <-exited:
		t.Fatalf("sfucrowd ended before its peers joined: %v\n%s", c.errs(), stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("sfucrowd's peers did not join within 60 s: %v", c.errs())
	}
	return nil
}

func (c *crowd) errs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errors...)
}

// VideoFrom is how many video packets the crowd's peer id received from
// publisher from, in the last report (every 500 ms).
func (c *crowd) VideoFrom(id, from string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.video[id][from]
}
