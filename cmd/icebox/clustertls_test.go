package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icebox-project/icebox/signaling/wire"
)

// testCA is a certificate authority for tests, writing PEM files.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, dir: t.TempDir()}
	writePEM(t, filepath.Join(ca.dir, "ca.pem"), "CERTIFICATE", der)
	return ca
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// leaf writes a node certificate for 127.0.0.1 (server and client use)
// and its key, and returns the cluster.tls lines naming them.
func (ca *testCA) leaf(t *testing.T, node string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: node},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, keyPath := filepath.Join(ca.dir, node+".pem"), filepath.Join(ca.dir, node+".key")
	writePEM(t, cert, "CERTIFICATE", der)
	writePEM(t, keyPath, "EC PRIVATE KEY", kder)
	return fmt.Sprintf("  tls: {cert_file: %q, key_file: %q, ca_file: %q}\n", cert, keyPath, filepath.Join(ca.dir, "ca.pem"))
}

// TestClusterGivenTLS: cluster.tls with an operator's files (mutual TLS
// on the routes, certificates of one CA): two nodes form a cluster, and a
// peer joined on one is seen on the other. A third node with the same
// secret but a certificate of another CA is refused at the handshake.
func TestClusterGivenTLS(t *testing.T) {
	key := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(key, []byte("tls-cluster-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t, "icebox test CA")
	a := &clusterProc{name: "a", state: t.TempDir(), key: key, relayMin: 24000, extra: ca.leaf(t, "a")}
	a.daemonProc = startDaemon(t, a.config())
	route := `"nats-route://` + a.find(routeLine) + `"`
	b := &clusterProc{name: "b", state: t.TempDir(), key: key, routes: route, relayMin: 24000, extra: ca.leaf(t, "b")}
	b.daemonProc = startDaemon(t, b.config())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of a:\n%s\nlog of b:\n%s", a.logText(), b.logText())
		}
	})
	waitCluster(t, []*clusterProc{a, b}, "a", "b")
	alice := wsJoin(t, a.daemonProc, "room1", "alice")
	bob := wsJoin(t, b.daemonProc, "room1", "bob")
	if m := alice.read(10 * time.Second); !isPeerEvent(m, wire.TypePeerJoined, bob.id) {
		t.Fatalf("alice got %v, want bob's peer-joined", m)
	}

	other := newTestCA(t, "another CA")
	m := &clusterProc{name: "m", state: t.TempDir(), key: key, routes: route, relayMin: 24000, extra: other.leaf(t, "m")}
	m.daemonProc = startDaemon(t, m.config())
	a.waitLog("TLS route handshake error")
	if strings.Contains(a.logText(), "cluster node joined\" node=m@") {
		t.Errorf("a took in m, whose certificate is of another CA:\n%s", a.logText())
	}
}
