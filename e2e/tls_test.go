package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v4"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/internal/turntest"
)

// testCA issues certificates for localhost and 127.0.0.1.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "icebox test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue writes a leaf certificate for localhost and 127.0.0.1 with the
// serial number, valid for an hour, to certFile and keyFile.
func (ca *testCA) issue(t *testing.T, serial int64, certFile, keyFile string) {
	t.Helper()
	ca.issueUntil(t, serial, time.Now().Add(time.Hour), certFile, keyFile)
}

// issueUntil is issue with a certificate valid until notAfter.
func (ca *testCA) issueUntil(t *testing.T, serial int64, notAfter time.Time, certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTLS: with certificate files the page is served over https (with
// HSTS), the plain listener redirects to it, a TURN client allocates and
// relays over turns:, and a replaced certificate is served after a reload.
func TestTLS(t *testing.T) {
	lane(t, laneLight)
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.issue(t, 100, certFile, keyFile)
	redirect := "127.0.0.1:0"
	ib := startIcebox(t, func(c *config.Config) {
		c.HTTP.TLS.CertFile, c.HTTP.TLS.KeyFile = certFile, keyFile
		c.HTTP.TLS.RedirectListen = &redirect
		c.TURN.Listen = append(c.TURN.Listen, "tls://127.0.0.1:0")
	})
	httpsAddr := ib.HTTPAddr().String()
	client := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	resp, err := client.Get("https://" + httpsAddr + "/r/secure-room?relay=1")
	if err != nil {
		t.Fatalf("https page: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("https page: %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
	m := iceConfigRe.FindSubmatch(body)
	if m == nil {
		t.Fatal("no ice-config on the https page")
	}
	var turnsURL, username, credential string
	var rc rtcConfiguration
	if err := json.Unmarshal(m[1], &rc); err != nil {
		t.Fatal(err)
	}
	for _, s := range rc.ICEServers {
		for _, u := range s.URLs {
			if strings.HasPrefix(u, "turns:") {
				turnsURL, username, credential = u, s.Username, s.Credential
			}
		}
	}
	if !strings.HasPrefix(turnsURL, "turns:localhost:") || !strings.HasSuffix(turnsURL, "?transport=tcp") {
		t.Fatalf("turns: URL %q, want turns:localhost:<port>?transport=tcp (the certificate's name)", turnsURL)
	}

	// The plain listener redirects to https.
	resp, err = client.Get("http://" + ib.RedirectAddr().String() + "/r/x?name=a")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || !strings.HasPrefix(loc, "https://") || !strings.HasSuffix(loc, "/r/x?name=a") {
		t.Errorf("redirect: %d %q", resp.StatusCode, loc)
	}

	// TURN over TLS with the page's credential.
	port := turnsURL[strings.LastIndexByte(turnsURL[:strings.IndexByte(turnsURL, '?')], ':')+1 : strings.IndexByte(turnsURL, '?')]
	conn, err := tls.Dial("tcp", "127.0.0.1:"+port, &tls.Config{RootCAs: ca.pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("TLS to the TURN listener: %v", err)
	}
	if serial := conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); serial != 100 {
		t.Errorf("TURN TLS certificate serial %d, want 100", serial)
	}
	stunConn := turn.NewSTUNConn(conn)
	tc, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: "127.0.0.1:" + port, TURNServerAddr: "127.0.0.1:" + port,
		Conn: stunConn, Username: username, Password: credential, Realm: "icebox"})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := tc.Listen(); err != nil {
		t.Fatal(err)
	}
	relayConn, err := tc.Allocate()
	if err != nil {
		t.Fatalf("Allocate over turns: %v", err)
	}
	if err := turntest.Echo(relayConn, turntest.UDPEcho(t)); err != nil {
		t.Errorf("relay over turns: %v", err)
	}
	relayConn.Close()

	// A replaced certificate is served after a reload (SIGHUP).
	ca.issue(t, 200, certFile, keyFile)
	if _, err := ib.Reload(ib.cfg); err != nil {
		t.Fatal(err)
	}
	c2, err := tls.Dial("tcp", httpsAddr, &tls.Config{RootCAs: ca.pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if serial := c2.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); serial != 200 {
		t.Errorf("after reload: certificate serial %d, want 200", serial)
	}
}
