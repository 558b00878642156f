package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Message authentication. Every message a node sends another carries, in
// NATS headers, the sender's node id, a sequence number and an
// HMAC-SHA256 of subject, reply subject, node id, sequence number and
// payload, keyed by
// the sender's message key: HKDF(secret, "message key " + node id)
// (keys.go). A receiver derives the key from the node id the message
// claims, and drops (and counts, as "rejected") a message whose tag does
// not match, whose payload names another node than the one that signed
// it, or, on the ordered subjects (room events, heartbeats, signals,
// members answers), whose sequence number is not above the last one
// accepted from that node (a replay).
//
// What this guarantees, and what not. A client that can reach NATS but
// does not hold the cluster secret (a user of an operator's NATS,
// cluster.nats_url; anyone holding only the derived client password)
// cannot make a message any node accepts: no heartbeat, "gone", room
// event or signal in any node's name, and cannot replay one node's
// messages as another's, on another subject, or again. Keys are per
// node in that a tag binds a message to one node id (one incarnation),
// so a message of one node is never taken for another's; but every node
// holds the secret and so can derive every key: a node that is itself
// compromised (or anyone with the secret) can speak for any node. The
// shared secret is the trust boundary; this layer keeps NATS access from
// being enough.
const (
	hdrNode = "Icebox-Node"
	hdrSeq  = "Icebox-Seq"
	hdrMAC  = "Icebox-Mac"
)

// macOf is the tag of one message: HMAC-SHA256(key, each field with
// its length before it).
func macOf(key []byte, subject, reply, node string, seq uint64, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	var b [8]byte
	for _, f := range [][]byte{[]byte(subject), []byte(reply), []byte(node), binary.BigEndian.AppendUint64(nil, seq), data} {
		binary.BigEndian.PutUint64(b[:], uint64(len(f)))
		m.Write(b[:])
		m.Write(f)
	}
	return m.Sum(nil)
}

// signer signs this node's messages.
type signer struct {
	id  string
	key []byte
	seq atomic.Uint64
}

// msg is data for subject (answers to reply, when not ""), signed.
// ordered takes the next sequence number: only for messages published in
// order (the sender goroutine); requests and replies, sent from
// elsewhere, carry 0.
func (s *signer) msg(subject, reply string, data []byte, ordered bool) *nats.Msg {
	var seq uint64
	if ordered {
		seq = s.seq.Add(1)
	}
	m := nats.NewMsg(subject)
	m.Reply, m.Data = reply, data
	m.Header.Set(hdrNode, s.id)
	m.Header.Set(hdrSeq, strconv.FormatUint(seq, 10))
	m.Header.Set(hdrMAC, base64.RawStdEncoding.EncodeToString(macOf(s.key, subject, reply, s.id, seq, data)))
	return m
}

// verifier checks the other nodes' messages.
type verifier struct {
	secret string
	mu     sync.Mutex
	keys   map[string][]byte // by node id, once a message of it verified
	// last is the highest ordered sequence number accepted, by node id.
	// Never pruned, so a replay of a long-gone node's messages stays
	// refused: one entry per node incarnation ever heard.
	last map[string]uint64
	// logged is when a rejection was last logged (Unix ns).
	logged atomic.Int64
}

// verify returns the node id that signed msg, or false. With ordered,
// the message must be the newest of that node's ordered messages.
func (v *verifier) verify(msg *nats.Msg, ordered bool) (string, bool) {
	if msg.Header == nil {
		return "", false
	}
	node := msg.Header.Get(hdrNode)
	seq, err := strconv.ParseUint(msg.Header.Get(hdrSeq), 10, 64)
	tag, terr := base64.RawStdEncoding.DecodeString(msg.Header.Get(hdrMAC))
	if node == "" || err != nil || terr != nil || ordered != (seq != 0) {
		return "", false
	}
	v.mu.Lock()
	key := v.keys[node]
	v.mu.Unlock()
	if key == nil {
		key = messageKey(v.secret, node)
	}
	if !hmac.Equal(tag, macOf(key, msg.Subject, msg.Reply, node, seq, msg.Data)) {
		return "", false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.keys == nil {
		v.keys, v.last = map[string][]byte{}, map[string]uint64{}
	}
	v.keys[node] = key
	if ordered {
		if seq <= v.last[node] {
			return "", false
		}
		v.last[node] = seq
	}
	return node, true
}

// rejected counts a message that failed authentication (or named another
// node than its signer) and logs it, at most every 10 s.
func (n *Node) rejected(msg *nats.Msg, why string) {
	n.stats.in(kindRejected)
	now := time.Now().UnixNano()
	last := n.verify.logged.Load()
	if now-last >= int64(10*time.Second) && n.verify.logged.CompareAndSwap(last, now) {
		n.log.Warn("cluster: message from another node refused (counted in icebox_cluster_messages_received_total{type=\"rejected\"}; logged at most every 10 s)",
			"subject", msg.Subject, "claimed_node", msg.Header.Get(hdrNode), "reason", why)
	}
}
