package turnsrv

import (
	"crypto/tls"
	"io"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/icebox-project/icebox/internal/testenv"
)

// TestSharedACMEALPN: ACME's TLS-ALPN-01 protocol (acme-tls/1, RFC 8737)
// gets an attacker nothing on the shared port. Where the listener does
// not serve it (certificate files), a client offering only it gets no
// handshake; with autocert and no challenge under way, neither; and a
// handshake that does complete with acme-tls/1 (a challenge under way) is
// closed there, RFC 8737 §3: nothing follows the handshake, so nothing
// reaches HTTP or TURN.
func TestSharedACMEALPN(t *testing.T) {
	t.Parallel()
	offer := func(t *testing.T, addr, sni string) (*tls.Conn, error) {
		c := tls.Client(dialTCP(t, addr), &tls.Config{InsecureSkipVerify: true, ServerName: sni, NextProtos: []string{alpnACME}}) //nolint:gosec // the test's own certificate.
		return c, c.Handshake()
	}

	t.Run("not served", func(t *testing.T) {
		t.Parallel()
		s, addr, seen := attackServer(t, "tls", nil, nil)
		if _, err := offer(t, addr, ""); err == nil {
			t.Fatal("a handshake offering only acme-tls/1 succeeded")
		}
		testenv.Eventually(t, closeGuard, "counted as a failed handshake", func() bool { return s.Stats().SharedTLSFailed.Load() == 1 })
		noRequest(t, seen)
	})

	t.Run("autocert without a challenge", func(t *testing.T) {
		t.Parallel()
		m := &autocert.Manager{
			Prompt: autocert.AcceptTOS, Cache: autocert.DirCache(filepath.Join(t.TempDir(), "acme")),
			HostPolicy: autocert.HostWhitelist("call.icebox.test"),
			// Nothing is issued here; were it tried, it would go nowhere.
			Client: &acme.Client{DirectoryURL: "http://127.0.0.1:1/dir"},
		}
		conf := m.TLSConfig()
		conf.NextProtos = append([]string{ALPNTURN}, conf.NextProtos...)
		if !slices.Contains(conf.NextProtos, alpnACME) {
			t.Fatalf("autocert's NextProtos %v lack %s", conf.NextProtos, alpnACME)
		}
		s, addr, seen := attackServer(t, "tls", conf, nil)
		for _, sni := range []string{"call.icebox.test", "other.example", ""} {
			if _, err := offer(t, addr, sni); err == nil {
				t.Errorf("acme-tls/1 for %q: a handshake without a challenge under way", sni)
			}
		}
		testenv.Eventually(t, closeGuard, "counted as failed handshakes", func() bool { return s.Stats().SharedTLSFailed.Load() == 3 })
		noRequest(t, seen)
	})

	t.Run("challenge under way", func(t *testing.T) {
		t.Parallel()
		challenge := selfSigned(t).Certificates[0]
		conf := selfSigned(t)
		conf.NextProtos = []string{ALPNTURN, "h2", "http/1.1", alpnACME}
		conf.GetCertificate = func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if slices.Equal(h.SupportedProtos, []string{alpnACME}) {
				return &challenge, nil
			}
			return nil, nil
		}
		s, addr, seen := attackServer(t, "tls", conf, nil)
		c, err := offer(t, addr, "")
		if err != nil {
			t.Fatalf("the challenge handshake: %v", err)
		}
		if got := c.ConnectionState().NegotiatedProtocol; got != alpnACME {
			t.Fatalf("negotiated %q, want %s", got, alpnACME)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if got := readUntilClosed(t, c); len(got) != 0 {
			t.Errorf("after the challenge handshake the server sent %q", got)
		}
		testenv.Eventually(t, closeGuard, "nothing pending", func() bool { return pendingCount(s) == 0 })
		st := s.Stats()
		if st.SharedHTTP.Load() != 0 || st.SharedTURN.Load() != 0 {
			t.Errorf("the challenge connection was handed on: SharedHTTP %d, SharedTURN %d", st.SharedHTTP.Load(), st.SharedTURN.Load())
		}
		noRequest(t, seen)
	})
}
