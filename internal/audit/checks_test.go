package audit

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// stunResponder answers every STUN request on 127.0.0.1 with a success
// response padded by a SOFTWARE attribute of pad bytes, standing in for
// a server that amplifies.
func stunResponder(t *testing.T, pad int) string {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if req.Decode() != nil {
				continue
			}
			resp, err := stun.Build(stun.NewTransactionIDSetter(req.TransactionID),
				stun.NewType(req.Type.Method, stun.ClassSuccessResponse), stun.NewSoftware(strings.Repeat("x", pad)))
			if err == nil {
				_, _ = c.WriteTo(resp.Raw, from)
			}
		}
	}()
	return c.LocalAddr().String()
}

// TestAmplification: the ratio is response bytes over request bytes, and
// a response more than MaxAmplification times the request fails.
func TestAmplification(t *testing.T) {
	tests := []struct {
		name string
		pad  int
		want Status
		// ratio of the 20-byte Binding request
		ratio float64
	}{
		{"small", 4, Pass, 28.0 / 20},
		{"at the limit", 36, Pass, 60.0 / 20},
		{"amplifying", 200, Fail, 224.0 / 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := byCheck(amplification(context.Background(), Config{Server: stunResponder(t, tt.pad)}))
			r := rs[CheckAmpBinding]
			if r.Status != tt.want || r.Ratio != tt.ratio {
				t.Errorf("got %q (ratio %v), want %s with ratio %v", r, r.Ratio, tt.want, tt.ratio)
			}
		})
	}
}

// TestIdleTCP: a server that closes a silent connection passes, one that
// keeps it past the bound fails, and no listener at all fails.
func TestIdleTCP(t *testing.T) {
	listen := func(t *testing.T, closeAtOnce bool) string {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				if closeAtOnce {
					c.Close()
				} else {
					t.Cleanup(func() { c.Close() })
				}
			}
		}()
		return ln.Addr().String()
	}
	closed := func(t *testing.T) string {
		addr := listen(t, true)
		return addr[:strings.LastIndexByte(addr, ':')] + ":1"
	}
	tests := []struct {
		name string
		addr func(*testing.T) string
		want Status
		text string
	}{
		{"closes", func(t *testing.T) string { return listen(t, true) }, Pass, "closed by the server"},
		{"keeps it open", func(t *testing.T) string { return listen(t, false) }, Fail, "still open after 200ms"},
		{"nothing listening", closed, Fail, "connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := idleTCP(context.Background(), Config{TCP: tt.addr(t), IdleWait: 200 * time.Millisecond})
			if r.Status != tt.want || !strings.Contains(r.Evidence, tt.text) {
				t.Errorf("got %q, want %s with %q", r, tt.want, tt.text)
			}
		})
	}
	if r := idleTCP(context.Background(), Config{}); r.Status != Skip {
		t.Errorf("no TCP listener: got %q, want SKIP", r)
	}
}

// tlsServer serves a TLS handshake on 127.0.0.1 with a self-signed
// certificate for name, valid until notAfter; pool holds it.
func tlsServer(t *testing.T, name string, notAfter time.Time) (addr string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	ln, err := tls.Listen("tcp4", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return ln.Addr().String(), pool
}

// TestTLSCertificate: verified for public_host and valid for 14 days more
// passes; a wrong name, a close expiry or an unknown issuer fails, and
// -insecure accepts the unknown issuer only.
func TestTLSCertificate(t *testing.T) {
	month := time.Now().Add(30 * 24 * time.Hour)
	tests := []struct {
		name      string
		certName  string
		notAfter  time.Time
		checkName string
		trusted   bool
		insecure  bool
		want      Status
		text      string
	}{
		{"good", "call.example.test", month, "call.example.test", true, false, Pass, "verifies for call.example.test"},
		{"wrong name", "other.example.test", month, "call.example.test", true, false, Fail, "does not verify"},
		{"expires soon", "call.example.test", time.Now().Add(3 * 24 * time.Hour), "call.example.test", true, false, Fail, "within"},
		{"unknown issuer", "call.example.test", month, "call.example.test", false, false, Fail, "does not verify"},
		{"unknown issuer, insecure", "call.example.test", month, "call.example.test", false, true, Pass, "not verified (-insecure)"},
		{"wrong name, insecure", "other.example.test", month, "call.example.test", false, true, Fail, "not call.example.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, pool := tlsServer(t, tt.certName, tt.notAfter)
			if !tt.trusted {
				pool = x509.NewCertPool()
			}
			cfg := Config{TLS: []TLSTarget{{Addr: addr, Name: tt.checkName, What: "https"}}, RootCAs: pool, Insecure: tt.insecure, Now: time.Now}
			rs := tlsChecks(context.Background(), cfg)
			if len(rs) != 1 || rs[0].Status != tt.want || !strings.Contains(rs[0].Evidence, tt.text) {
				t.Errorf("got %q, want %s with %q", rs, tt.want, tt.text)
			}
		})
	}
}

func TestEmbeddedIPv4(t *testing.T) {
	tests := []struct{ in, want string }{
		{"127.0.0.1", "127.0.0.1"},
		{"::ffff:127.0.0.1", "127.0.0.1"},
		{"::7f00:1", "127.0.0.1"},
		{"64:ff9b::a00:1", "10.0.0.1"},
		{"::1", "::1"},
		{"::", "::"},
		{"2001:db8::1", "2001:db8::1"},
	}
	for _, tt := range tests {
		if got := embeddedIPv4(netip.MustParseAddr(tt.in)); got.String() != tt.want {
			t.Errorf("embeddedIPv4(%s): got %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestXORPeerAddress: the attribute keeps IPv6 forms that carry an IPv4
// address as IPv6 (family 2, 16 bytes) and decodes back to the address.
func TestXORPeerAddress(t *testing.T) {
	tests := []struct {
		addr   string
		family byte
	}{
		{"127.0.0.1:4000", 1},
		{"[::ffff:127.0.0.1]:4000", 2},
		{"[::7f00:1]:4000", 2},
		{"[64:ff9b::a00:1]:53", 2},
	}
	for _, tt := range tests {
		ap := netip.MustParseAddrPort(tt.addr)
		m, err := stun.Build(stun.TransactionID, stun.NewType(stun.MethodCreatePermission, stun.ClassRequest), xorPeerAddress(ap))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := m.Get(stun.AttrXORPeerAddress)
		var x stun.XORMappedAddress
		if err := x.GetFromAs(m, stun.AttrXORPeerAddress); err != nil {
			t.Fatal(err)
		}
		got, _ := netip.AddrFromSlice(x.IP)
		if raw[1] != tt.family || netip.AddrPortFrom(got, uint16(x.Port)) != ap {
			t.Errorf("%s: got family %d, %s:%d", tt.addr, raw[1], got, x.Port)
		}
	}
}
