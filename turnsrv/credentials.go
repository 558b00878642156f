package turnsrv

import (
	"crypto/hmac"
	"crypto/md5"  //nolint:gosec // RFC 8489 §9.2.2 defines the long-term key as MD5.
	"crypto/sha1" //nolint:gosec // draft-uberti-behave-turn-rest-00 §2.2 defines HMAC-SHA1.
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/pion/stun/v3"
)

// Credentials mints and verifies TURN credentials: TURN REST time-limited
// credentials (draft-uberti-behave-turn-rest-00 §2.2, the scheme coturn
// calls use-auth-secret) and static users. It is safe for concurrent use
// and immutable once built.
type Credentials struct {
	realm   string
	secrets [][]byte
	ttl     time.Duration
	// users maps a static user name to its long-term key.
	users map[string][]byte
}

// NewCredentials builds Credentials. secrets: the first signs, all
// verify; ttl: lifetime of minted credentials; users: static user name to
// password. Errors: ErrNoSecret when secrets is empty.
func NewCredentials(realm string, secrets []string, ttl time.Duration, users map[string]string) (*Credentials, error) {
	if len(secrets) == 0 {
		return nil, ErrNoSecret
	}
	c := &Credentials{realm: realm, ttl: ttl, users: make(map[string][]byte, len(users))}
	for _, s := range secrets {
		c.secrets = append(c.secrets, []byte(s))
	}
	for name, pw := range users {
		c.users[name] = LongTermKey(name, realm, pw)
	}
	return c, nil
}

// TTL is the lifetime of minted credentials.
func (c *Credentials) TTL() time.Duration { return c.ttl }

// Mint returns a TURN REST username "<unix expiry seconds>:<user>" and its
// password base64(HMAC-SHA1(first secret, username)), valid for TTL from
// now.
func (c *Credentials) Mint(user string, now time.Time) (username, password string, expires time.Time) {
	expires = now.Add(c.ttl).Truncate(time.Second)
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + user
	return username, RESTPassword(c.secrets[0], username), expires
}

// RESTPassword is base64(HMAC-SHA1(secret, username)) (TURN REST §2.2).
func RESTPassword(secret []byte, username string) string {
	m := hmac.New(sha1.New, secret)
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// LongTermKey is MD5(username ":" realm ":" password), the key of the
// long-term credential mechanism (RFC 8489 §9.2.2).
func LongTermKey(username, realm, password string) []byte {
	h := md5.New() //nolint:gosec // protocol-defined.
	h.Write([]byte(username + ":" + realm + ":" + password))
	return h.Sum(nil)
}

// authFailure says why a request failed authentication. The strings are
// the reason labels used in logs and counters.
type authFailure string

const (
	authOK         authFailure = ""
	authBadUser    authFailure = "unknown-user"
	authBadMAC     authFailure = "bad-integrity"
	authExpired    authFailure = "expired"
	authWrongRealm authFailure = "wrong-realm"
	// authWrongUser: a valid credential, but not the allocation's (441).
	authWrongUser authFailure = "wrong-credentials"
)

// identity is what a verified request tells about who sent it.
type identity struct {
	key []byte
	// user is the quota identity: the id part of a REST username, or the
	// static user name.
	user string
	// expires is the REST credential's expiry; zero for static users.
	expires time.Time
}

// verify checks the MESSAGE-INTEGRITY of m under username: a static user
// first, then a REST username under each secret. It does not check the
// expiry; callers decide when that matters (RFC 8656 allows an existing
// allocation to outlive its credential).
func (c *Credentials) verify(m *stun.Message, username, realm string) (identity, authFailure) {
	if realm != c.realm {
		return identity{}, authWrongRealm
	}
	if key, ok := c.users[username]; ok {
		if stun.MessageIntegrity(key).Check(m) != nil {
			return identity{}, authBadMAC
		}
		return identity{key: key, user: username}, authOK
	}
	expires, user, ok := parseRESTUsername(username)
	if !ok {
		return identity{}, authBadUser
	}
	for _, s := range c.secrets {
		key := LongTermKey(username, c.realm, RESTPassword(s, username))
		if stun.MessageIntegrity(key).Check(m) == nil {
			return identity{key: key, user: user, expires: expires}, authOK
		}
	}
	return identity{}, authBadMAC
}

// parseRESTUsername splits "<unix expiry>:<user>" (or a bare "<unix
// expiry>", as coturn accepts). The user part may itself hold colons.
func parseRESTUsername(username string) (expires time.Time, user string, ok bool) {
	ts, user, _ := strings.Cut(username, ":")
	if ts == "" || len(ts) > 12 {
		return time.Time{}, "", false
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, "", false
	}
	return time.Unix(n, 0), user, true
}
