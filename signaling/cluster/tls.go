package cluster

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"
)

// RouteServerName is the name every certificate derived from the secret
// carries and every node asks for when it dials a route: routes are
// dialled by address (and by addresses the others gossip), which no
// certificate could list, so the name says "a node of this cluster".
const RouteServerName = "icebox-cluster.invalid"

// SecretTLS is the routes' mutual TLS derived from the cluster secret,
// for node name: a certificate authority whose Ed25519 key comes from
// the secret (HKDF, keys.go; its certificate is built the same on every
// node), and a certificate of this node's own, with a fresh key that
// never leaves the process, signed by it. Both sides must present a
// certificate of that authority (TLS 1.3), so a route from anyone
// without the secret fails in the handshake, before NATS's CONNECT, and
// nothing derived from the secret crosses the wire but signatures.
func SecretTLS(secret, name string) (*tls.Config, error) {
	ca := caKey(secret)
	// Fixed fields: the authority's certificate is byte-identical on every
	// node (Ed25519 signatures are deterministic).
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"icebox"}, CommonName: "icebox cluster routes"},
		NotBefore:             time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2124, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(nil, caTmpl, caTmpl, ca.Public(), ca)
	if err != nil {
		return nil, fmt.Errorf("cluster: route CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("cluster: route CA: %w", err)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("cluster: route key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("cluster: route certificate: %w", err)
	}
	now := time.Now()
	leafTmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"icebox"}, CommonName: name},
		DNSNames:     []string{RouteServerName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(100 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, pub, ca)
	if err != nil {
		return nil, fmt.Errorf("cluster: route certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}},
		RootCAs:      pool, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		ServerName: RouteServerName, MinVersion: tls.VersionTLS13,
	}, nil
}
