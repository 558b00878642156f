package cluster

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
)

// Every key a node uses is derived from the shared cluster secret with
// HKDF-SHA256 (RFC 5869), each under a label of its own, so that no
// derived value gives away the secret or another derived value: the NATS
// client password does not let one sign a message, and no route carries
// anything from which the secret follows.
const (
	hkdfSalt        = "icebox cluster v1"
	labelCA         = "route CA key"
	labelClientPass = "NATS client password"
	labelRoutePass  = "NATS route password"
	labelMessage    = "message key "
)

func derive(secret, label string, n int) []byte {
	k, err := hkdf.Key(sha256.New, []byte(secret), []byte(hkdfSalt), label, n)
	if err != nil {
		panic("cluster: hkdf: " + err.Error()) // only for n too large
	}
	return k
}

// caKey is the Ed25519 key of the routes' certificate authority: the
// same on every node holding secret, so every node signs its own route
// certificate with it and checks the others' against it.
func caKey(secret string) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(derive(secret, labelCA, ed25519.SeedSize))
}

// clientPassword is the password of the embedded NATS's client user: the
// node's own connection and tests use it; it signs nothing.
func clientPassword(secret string) string {
	return hex.EncodeToString(derive(secret, labelClientPass, 32))
}

// routePassword is the routes' password when they run over TLS with an
// operator's certificates (EmbedConfig.TLS): a certificate of a shared CA
// is then not enough to join; it only ever travels inside TLS.
func routePassword(secret string) string {
	return hex.EncodeToString(derive(secret, labelRoutePass, 32))
}

// messageKey is node id's HMAC-SHA256 key for its messages (auth.go).
func messageKey(secret, id string) []byte { return derive(secret, labelMessage+id, 32) }
