package cluster

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// lossyKV is a real rooms bucket whose first Get is lost, as a request
// is while a stream leader is elected; it notes whether each Get's
// context had ended by the time the next Get was made.
type lossyKV struct {
	jetstream.KeyValue
	mu    sync.Mutex
	ctxs  []context.Context
	ended []bool // ended[i]: ctxs[i] was done when Get i+1 began
}

var errLost = errors.New("request lost")

func (k *lossyKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	k.mu.Lock()
	if n := len(k.ctxs); n > 0 {
		k.ended = append(k.ended, k.ctxs[n-1].Err() != nil)
	}
	k.ctxs = append(k.ctxs, ctx)
	first := len(k.ctxs) == 1
	k.mu.Unlock()
	if first {
		return nil, errLost
	}
	return k.KeyValue.Get(ctx, key)
}

// TestAdmitEndsEachAttempt: an admission that is tried again ends the
// context of the attempt before, rather than keeping every attempt's
// context (and its timer) alive until the whole admission returns.
func TestAdmitEndsEachAttempt(t *testing.T) {
	tn := startCluster(t, 8)[0]
	kv := &lossyKV{KeyValue: *tn.node.kv.Load()}
	var jkv jetstream.KeyValue = kv
	tn.node.kv.Store(&jkv)

	adm, err := tn.node.Admit("room", "p1", "alice", 8)
	if err != nil {
		t.Fatalf("Admit after one lost request: %v", err)
	}
	if len(adm.Others) != 0 || adm.Host != tn.node.ID() {
		t.Errorf("admission: got %+v, want no others and this node as host", adm)
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if len(kv.ctxs) < 2 {
		t.Fatalf("Get called %d times, want a retry after the lost request", len(kv.ctxs))
	}
	if !kv.ended[0] {
		t.Error("the lost attempt's context was still live when the next attempt began")
	}
}
