//go:build linux && (amd64 || arm64)

package turnsrv

import (
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// TestAllocatesDuringGarbageFlood (finding 8): while 200,000 datagrams of
// junk hit the UDP listener, 20 of 20 clients allocate, each with its
// client's normal retransmissions. The junk is dropped before it reaches
// the control plane's queue.
func TestAllocatesDuringGarbageFlood(t *testing.T) {
	s := startServer(t, nil)
	flooder, err := net.Dial("udp4", s.udp)
	if err != nil {
		t.Fatal(err)
	}
	defer flooder.Close()
	const floodSize = 200_000
	started := make(chan struct{})
	floodDone := make(chan int)
	go func() {
		junk := make([]byte, 1200)
		sent := 0
		for i := 0; i < floodSize; i++ {
			n := 20 + rand.IntN(len(junk)-20)
			for j := range junk[:n] {
				junk[j] = byte(rand.Uint32())
			}
			if _, err := flooder.Write(junk[:n]); err == nil {
				sent++
			}
			if i == 10_000 {
				close(started)
			}
		}
		floodDone <- sent
	}()
	<-started
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user, pass, _ := s.cfg.Credentials.Mint("legit", time.Now())
			relay, err := newClient(t, "udp", s.udp, user, pass).Allocate()
			if err != nil {
				errs <- err
				return
			}
			relay.Close()
		}()
	}
	wg.Wait()
	sent := <-floodDone
	close(errs)
	failed := 0
	for err := range errs {
		failed++
		t.Errorf("Allocate during the flood: %v", err)
	}
	t.Logf("%d of 20 allocations succeeded during a flood of %d datagrams; %d junk datagrams dropped before the queue, %d dropped at a full queue",
		20-failed, sent, s.Stats().DroppedNotSTUN.Load(), s.Stats().DroppedControl.Load())
	if s.Stats().DroppedNotSTUN.Load() == 0 {
		t.Error("no junk datagram was counted as dropped before the queue")
	}
}
