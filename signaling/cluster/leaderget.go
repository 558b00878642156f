package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// leaderKV is the rooms bucket read through its stream's leader.
// jetstream.KeyValue's Get is a direct get, which any replica answers,
// and a node's own replica first: one that lags (back from a cut or a
// pause, or an old leader whose last writes did not commit) answers
// with an old record, each compare-and-set on it fails, and the node
// reads the same old record again, for as long as the replica lags (28 s
// after a heal once, with 1,182 failed writes). The leader's answer is
// the record a compare-and-set is checked against; with no leader there
// is no answer, and the caller tries again as for a write.
type leaderKV struct {
	jetstream.KeyValue
	js     nats.JetStreamContext
	stream string // KV_<bucket>
	prefix string // $KV.<bucket>.
}

func newLeaderKV(kv jetstream.KeyValue, js nats.JetStreamContext) *leaderKV {
	return &leaderKV{KeyValue: kv, js: js, stream: "KV_" + kv.Bucket(), prefix: "$KV." + kv.Bucket() + "."}
}

// Get reads key's latest entry from the stream's leader; a deleted or
// purged key is jetstream.ErrKeyNotFound.
func (k *leaderKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	m, err := k.js.GetLastMsg(k.stream, k.prefix+key, nats.Context(ctx))
	if errors.Is(err, nats.ErrMsgNotFound) {
		return nil, jetstream.ErrKeyNotFound
	}
	if err != nil {
		return nil, err
	}
	if op := m.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
		return nil, jetstream.ErrKeyNotFound
	}
	return leaderEntry{bucket: k.Bucket(), key: key, value: m.Data, rev: m.Sequence, created: m.Time}, nil
}

// leaderEntry is an entry leaderKV read.
type leaderEntry struct {
	bucket, key string
	value       []byte
	rev         uint64
	created     time.Time
}

func (e leaderEntry) Bucket() string                  { return e.bucket }
func (e leaderEntry) Key() string                     { return e.key }
func (e leaderEntry) Value() []byte                   { return e.value }
func (e leaderEntry) Revision() uint64                { return e.rev }
func (e leaderEntry) Created() time.Time              { return e.created }
func (e leaderEntry) Delta() uint64                   { return 0 }
func (e leaderEntry) Operation() jetstream.KeyValueOp { return jetstream.KeyValuePut }
