package turnsrv

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v3"

	"github.com/icebox-project/icebox/internal/ratelog"
	"github.com/icebox-project/icebox/internal/stunwire"
)

// The guard sits between icebox's sockets and pion/turn. pion/turn answers
// any failed authentication with 400 and can return only one key per
// username, so the guard authenticates every TURN request first: it tries
// each configured secret, answers failures with 401 Unauthorized (RFC 8489
// §9.2.4) and 403 Forbidden for denied peers (RFC 8656 §9.1), and hands
// the verified key to pion's AuthHandler through keyCache. ChannelData and
// indications pass straight through without decoding.

// keyIdleTimeout is how long a verified key stays cached without use. It
// exceeds MaxLifetime so an allocation refreshed at the longest allowed
// interval still finds its key.
const keyIdleTimeout = MaxLifetime + 10*time.Minute

// MaxLifetime is the longest allocation lifetime icebox grants per Refresh
// (RFC 8656 §7.2 lets the server choose; pion/turn's own cap is 1 h).
const MaxLifetime = time.Hour

type cachedKey struct {
	key      []byte
	lastUsed atomic.Int64 // unix seconds
}

// keyCache maps a verified username to its long-term key.
type keyCache struct {
	mu   sync.RWMutex
	keys map[string]*cachedKey
}

func (c *keyCache) put(username string, key []byte, now time.Time) {
	c.mu.RLock()
	e := c.keys[username]
	c.mu.RUnlock()
	if e != nil && string(e.key) == string(key) {
		e.lastUsed.Store(now.Unix())
		return
	}
	e = &cachedKey{key: key}
	e.lastUsed.Store(now.Unix())
	c.mu.Lock()
	c.keys[username] = e
	c.mu.Unlock()
}

func (c *keyCache) get(username string) ([]byte, bool) {
	c.mu.RLock()
	e := c.keys[username]
	c.mu.RUnlock()
	if e == nil {
		return nil, false
	}
	return e.key, true
}

// sweep drops keys unused since before cutoff.
func (c *keyCache) sweep(cutoff time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for u, e := range c.keys {
		if e.lastUsed.Load() < cutoff.Unix() {
			delete(c.keys, u)
		}
	}
}

// policy is what a reload can change. It is replaced whole, so a request
// sees one consistent policy.
type policy struct {
	creds    *Credentials
	peers    *PeerFilter
	maxUser  int // <= 0: no cap
	maxTotal int // <= 0: no cap
	maxIP    int // <= 0: no cap
	// maxBitrate caps each direction of allocations created under this
	// policy, in bits per second; <= 0: no cap.
	maxBitrate int64
}

// codeWrongCredentials is 441 Wrong Credentials (RFC 8656 §18).
const codeWrongCredentials stun.ErrorCode = 441

// owners maps an allocation's 5-tuple (client and listener address) to
// the username that created it, from pion's allocation events.
type owners struct {
	mu sync.RWMutex
	m  map[fiveTuple]string
}

func (o *owners) set(src, local net.Addr, username string) {
	o.mu.Lock()
	o.m[fiveTupleOf(src, local)] = username
	o.mu.Unlock()
}

func (o *owners) remove(src, local net.Addr) {
	o.mu.Lock()
	delete(o.m, fiveTupleOf(src, local))
	o.mu.Unlock()
}

func (o *owners) get(src, local net.Addr) (string, bool) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	u, ok := o.m[fiveTupleOf(src, local)]
	return u, ok
}

type guard struct {
	owners   *owners
	policy   *atomic.Pointer[policy]
	realm    string
	keys     *keyCache
	log      *slog.Logger
	refusals *ratelog.Logger
	now      func() time.Time
	stats    *Stats
	draining atomic.Bool
}

// Admit inspects one inbound packet b from src to the listener at local:
// a UDP datagram, or one TCP frame cut by tcpFrameLen. pass is true when
// pion should handle b[:n] (n < len(b) when the guard rewrote the request
// in place); otherwise reply, when not nil, is the answer to send back to
// src. m is scratch space owned by the calling read loop.
//
// Admit sorts b as pion/turn will (packetKind): ChannelData passes
// untouched (the relay fast path), anything neither ChannelData nor a STUN
// message is dropped, and every Allocate, Refresh, CreatePermission and
// ChannelBind request carrying MESSAGE-INTEGRITY is authenticated here
// under the current credentials before pion/turn sees it.
func (g *guard) Admit(m *stun.Message, b []byte, src, local net.Addr) (reply []byte, n int, pass bool) {
	switch packetKind(b) {
	case kindChannelData:
		return nil, len(b), true
	case kindDrop:
		g.stats.DroppedNotSTUN.Add(1)
		return nil, 0, false
	}
	t := binary.BigEndian.Uint16(b[0:2])
	// Class bits C1 C0 are bits 8 and 4 (RFC 8489 §5); 00 is a request.
	if t&0x0110 != 0 {
		return nil, len(b), true
	}
	method := stun.Method(t&0x000F | (t&0x00E0)>>1 | (t&0x3E00)>>2)
	switch method {
	case stun.MethodAllocate, stun.MethodRefresh, stun.MethodCreatePermission, stun.MethodChannelBind:
	default:
		return nil, len(b), true
	}
	m.Reset()
	m.Raw = append(m.Raw[:0], b...)
	if err := m.Decode(); err != nil {
		return nil, len(b), true // pion answers 400 or drops it.
	}
	if !m.Contains(stun.AttrMessageIntegrity) {
		return g.unauthenticated(m, method, src, local)
	}
	var username stun.Username
	var realm stun.Realm
	var nonce stun.Nonce
	if username.GetFrom(m) != nil || realm.GetFrom(m) != nil || nonce.GetFrom(m) != nil {
		// MESSAGE-INTEGRITY without what it is checked under: 400 Bad
		// Request (RFC 8489 §9.2.4), never handed on unjudged.
		return g.reply(m, method, stun.CodeBadRequest, nil), 0, false
	}
	pol := g.policy.Load()
	// Every request verifies under the credentials in force now: a secret
	// or static user removed by a reload is revoked for every request, on
	// allocations made with it too.
	id, why := pol.creds.verify(m, username.String(), realm.String())
	if why == authOK && !id.expires.IsZero() && !g.now().Before(id.expires) {
		// An expired REST credential is refused, but for requests on the
		// allocation it created (same 5-tuple, same username): a call
		// outlives its credential (RFC 8656 leaves the lifetime of an
		// allocation to Refresh, not to the credential).
		if owner, ok := g.owners.get(src, local); method == stun.MethodAllocate || !ok || owner != username.String() {
			why = authExpired
		}
	}
	if why != authOK {
		g.stats.authFailure(why)
		g.refusals.Info(string(why), "turn request refused", "remote", src.String(), "method", method.String(),
			"user", ratelog.Clip(username.String()))
		return g.challenge(m, b, method, src, local)
	}
	if method != stun.MethodAllocate {
		// RFC 8656 §5: later requests on an allocation carry the username
		// it was made with.
		if owner, ok := g.owners.get(src, local); ok && owner != username.String() {
			g.stats.authFailure(authWrongUser)
			g.refusals.Info(string(authWrongUser), "turn request refused", "remote", src.String(), "method", method.String(),
				"user", ratelog.Clip(username.String()))
			return g.reply(m, method, codeWrongCredentials, id.key), 0, false
		}
	}
	g.keys.put(username.String(), id.key, g.now())
	if method == stun.MethodAllocate && g.draining.Load() {
		// Shutting down: 508 Insufficient Capacity (RFC 8656 §7.2) sends
		// the client to another server.
		return g.reply(m, method, stun.CodeInsufficientCapacity, id.key), 0, false
	}
	if method == stun.MethodCreatePermission || method == stun.MethodChannelBind {
		peer, verdict, err := checkPeers(m, pol.peers)
		if err != nil {
			// Missing or malformed XOR-PEER-ADDRESS: 400 (RFC 8656 §9.2,
			// §11.2), before anything is installed.
			return g.reply(m, method, stun.CodeBadRequest, id.key), 0, false
		}
		if verdict != PeerAllowed {
			// One refused peer refuses the whole request: nothing of it is
			// installed (RFC 8656 §9.2: 403 Forbidden).
			g.stats.PeerDenials.Add(1)
			// Debug: every browser offers private host candidates, which
			// are refused here in each call (the metric counts them all).
			g.refusals.Log(slog.LevelDebug, "peer-"+string(verdict), "turn peer denied", "remote", src.String(), "method", method.String(),
				"user", ratelog.Clip(username.String()), "peer", peer.String())
			return g.reply(m, method, stun.CodeForbidden, id.key), 0, false
		}
	}
	return nil, len(b), true
}

// unauthenticated answers a guarded request without MESSAGE-INTEGRITY
// where it can with less than pion/turn's 401 challenge (a REALM, a NONCE
// and a reason: 68 bytes for a 20-byte request). An Allocate without
// REQUESTED-TRANSPORT gets 400 Bad Request (RFC 8656 §7.2), and a
// Refresh, CreatePermission or ChannelBind on a 5-tuple without an
// allocation 437 Allocation Mismatch (RFC 8656 §7.3, §9.2, §11.2), and on
// a 5-tuple with one 400. Only an Allocate with REQUESTED-TRANSPORT goes to
// pion/turn for the challenge: it is at least 28 bytes, and the challenge
// at most 84 while the realm is at most config.MaxRealmLength bytes.
func (g *guard) unauthenticated(m *stun.Message, method stun.Method, src, local net.Addr) ([]byte, int, bool) {
	if method == stun.MethodAllocate {
		if !m.Contains(stun.AttrRequestedTransport) {
			return g.reply(m, method, stun.CodeBadRequest, nil), 0, false
		}
		return nil, len(m.Raw), true
	}
	if _, ok := g.owners.get(src, local); !ok {
		return g.reply(m, method, stun.CodeAllocMismatch, nil), 0, false
	}
	// On an allocation the client holds a nonce already (a stale one gets
	// 438 with a fresh one): a request without MESSAGE-INTEGRITY there is
	// malformed, or forged from the client's address to reflect pion's
	// challenge at it.
	return g.reply(m, method, stun.CodeBadRequest, nil), 0, false
}

// challenge answers a request that failed authentication with 401 and a
// fresh nonce (RFC 8489 §9.2.4), never the nonce the request carried. The
// nonces are pion/turn's, which it alone can mint and validate, so the
// request is cut in place to its bare header, which pion answers with the
// challenge. CreatePermission and ChannelBind reach pion's authentication
// only on an existing allocation; without one the answer is 437
// Allocation Mismatch (RFC 8656 §9.2, §11.2).
func (g *guard) challenge(m *stun.Message, b []byte, method stun.Method, src, local net.Addr) ([]byte, int, bool) {
	if method == stun.MethodCreatePermission || method == stun.MethodChannelBind {
		if _, ok := g.owners.get(src, local); !ok {
			return g.reply(m, method, stun.CodeAllocMismatch, nil), 0, false
		}
	}
	binary.BigEndian.PutUint16(b[2:4], 0) // no attributes: the 20-byte header
	return nil, 20, true
}

// checkPeers judges every XOR-PEER-ADDRESS of m (RFC 8656 §9.1: a
// CreatePermission may carry several; ChannelBind carries one), returning
// the first refused peer and why. Errors: no XOR-PEER-ADDRESS, or one that
// does not decode.
func checkPeers(m *stun.Message, peers *PeerFilter) (netip.AddrPort, PeerVerdict, error) {
	seen := false
	for _, a := range m.Attributes {
		if a.Type != stun.AttrXORPeerAddress {
			continue
		}
		seen = true
		ap, err := decodeXORAddress(a.Value, m.TransactionID)
		if err != nil {
			return netip.AddrPort{}, PeerAllowed, err
		}
		if v := peers.Check(ap); v != PeerAllowed {
			return ap, v, nil
		}
	}
	if !seen {
		return netip.AddrPort{}, PeerAllowed, errNoPeerAddress
	}
	return netip.AddrPort{}, PeerAllowed, nil
}

var (
	errNoPeerAddress  = errors.New("turnsrv: no XOR-PEER-ADDRESS")
	errBadPeerAddress = errors.New("turnsrv: malformed XOR-PEER-ADDRESS")
)

// decodeXORAddress decodes the value of an XOR-*-ADDRESS attribute (RFC
// 8489 §14.2): a reserved byte, the family (1: IPv4, 2: IPv6), the port
// XORed with the magic cookie's top 16 bits, and the address XORed with
// the magic cookie (IPv4) or the magic cookie and the transaction ID
// (IPv6).
func decodeXORAddress(v []byte, tid [stun.TransactionIDSize]byte) (netip.AddrPort, error) {
	if len(v) < 4 {
		return netip.AddrPort{}, errBadPeerAddress
	}
	port := binary.BigEndian.Uint16(v[2:4]) ^ uint16(stunwire.MagicCookie>>16)
	var key [16]byte
	binary.BigEndian.PutUint32(key[0:4], stunwire.MagicCookie)
	copy(key[4:], tid[:])
	switch {
	case v[1] == 1 && len(v) == 8:
		var a [4]byte
		for i := range a {
			a[i] = v[4+i] ^ key[i]
		}
		return netip.AddrPortFrom(netip.AddrFrom4(a), port), nil
	case v[1] == 2 && len(v) == 20:
		var a [16]byte
		for i := range a {
			a[i] = v[4+i] ^ key[i]
		}
		return netip.AddrPortFrom(netip.AddrFrom16(a), port), nil
	}
	return netip.AddrPort{}, errBadPeerAddress
}

// reply builds an error response to request m. A non-nil key adds
// MESSAGE-INTEGRITY (RFC 8489 §9.2.4: responses to authenticated requests
// are authenticated) and FINGERPRINT; an answer to an unauthenticated
// request carries neither, to stay small (an attacker with a forged source
// address must not get more bytes reflected than it sent, times
// audit.MaxAmplification).
func (g *guard) reply(m *stun.Message, method stun.Method, code stun.ErrorCode, key []byte, extra ...stun.Setter) []byte {
	setters := []stun.Setter{
		stun.NewTransactionIDSetter(m.TransactionID),
		stun.NewType(method, stun.ClassErrorResponse),
		code,
	}
	setters = append(setters, extra...)
	if key != nil {
		setters = append(setters, stun.MessageIntegrity(key), stun.Fingerprint)
	}
	resp, err := stun.Build(setters...)
	if err != nil {
		g.log.Warn("turn: building error response", "error", err)
		return nil
	}
	return resp.Raw
}
