//go:build linux

package e2e

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
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/netlab"
)

// The NAT lab's network. The "internet" is one namespace (inet) holding a
// bridge with two documentation ranges (RFC 5737): servers have addresses
// in 203.0.113.0/24, the clients' NAT routers in 198.51.100.0/24. Each
// client sits alone on a LAN 10.<n>.0.0/24 behind its own router.
//
//	client a ─ router a ─┐                 ┌─ srv (icebox, 203.0.113.10)
//	10.n.0.2   198.51.100.x ─ inet (br0) ──┤
//	client b ─ router b ─┘                 └─ nat11 ─ srv11 (icebox, 10.200.0.2,
//	                                            203.0.113.20)   public_ip 203.0.113.20)
var (
	inetClients = netip.MustParsePrefix("198.51.100.0/24")
	srvAddr     = netip.MustParseAddr("203.0.113.10")
	nat11Addr   = netip.MustParseAddr("203.0.113.20")
)

// natKind is how a client's router treats its traffic.
type natKind int

const (
	// natPortPreserving is Linux masquerading: a source port is kept
	// when free, so one socket keeps one public port whatever the
	// destination (endpoint-independent mapping, in practice), and
	// conntrack lets in only answers (address and port dependent
	// filtering). Hole punching works through two of them.
	natPortPreserving natKind = iota
	// natSymmetric picks a random public port per destination
	// (masquerade random,fully-random): the port the STUN server saw is
	// not the one a peer would see, so hole punching fails.
	natSymmetric
	// natNoUDP is natPortPreserving that drops all UDP.
	natNoUDP
	// natOnly443 is natPortPreserving that lets out only TCP to port 443
	// (and the answers): a hotel or guest network.
	natOnly443
)

func (k natKind) String() string {
	return [...]string{"port-preserving", "symmetric", "no-udp", "only-tcp-443"}[k]
}

// rules is the router's nftables ruleset; the LAN is lan0, the WAN wan0.
func (k natKind) rules() string {
	masq := "masquerade"
	if k == natSymmetric {
		masq = "masquerade random,fully-random"
	}
	// Like a home router, it drops what comes unasked to the router
	// itself: delivered to a closed port, such a packet would leave a
	// conntrack entry that takes the public port a client's outgoing
	// packet to the same peer needs, and the NAT would map that one to
	// another port, which no peer expects.
	s := `table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" ` + masq + `
  }
}
table ip router {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan0" ct state new drop
  }
}
`
	switch k {
	case natNoUDP:
		s += `table ip filter {
  chain forward {
    type filter hook forward priority filter; policy accept;
    meta l4proto udp drop
  }
}
`
	case natOnly443:
		s += `table ip filter {
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "lan0" oifname "wan0" tcp dport 443 accept
  }
}
`
	}
	return s
}

// natLab is the shared part of the lab: the internet, the binaries and
// the certificate of the lab's servers.
type natLab struct {
	lab  *netlab.Lab
	inet *netlab.Netns
	bins labBinaries
	// certFile and keyFile: a certificate for the servers' public
	// addresses (IP SANs; the lab has no DNS), from a CA whose
	// certificate is in caFile.
	certFile, keyFile, caFile string

	mu       sync.Mutex
	iceboxes []*labIcebox // running, for their logs when a call fails
	ports    int          // veth ends plugged into br0
	wans     int          // router WAN addresses handed out
	lans     int          // client LANs handed out
}

// labBinaries are icebox and natpeer, built once for the lab.
type labBinaries struct {
	icebox, natpeer string
}

func buildLabBinaries(t *testing.T) labBinaries {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir, "../cmd/icebox", "./internal/natpeer")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return labBinaries{icebox: filepath.Join(dir, "icebox"), natpeer: filepath.Join(dir, "natpeer")}
}

// newNATLab makes the internet namespace and builds the binaries.
func newNATLab(t *testing.T) *natLab {
	t.Helper()
	nl := &natLab{lab: netlab.New(t)}
	nl.bins = buildLabBinaries(t)
	nl.issueCertificate(t)
	nl.inet = nl.lab.Netns(t, "inet")
	// br0's own address is set, so that it does not follow the lowest
	// of its ports' as ports come and go.
	nl.inet.IP(t, "link add br0 type bridge", "link set br0 address 02:00:5e:00:53:01", "link set br0 up",
		"addr add 203.0.113.1/24 dev br0", "addr add 198.51.100.1/24 dev br0")
	nl.inet.Router(t)
	return nl
}

// issueCertificate makes the lab's CA and a certificate of the servers'
// public addresses.
func (nl *natLab) issueCertificate(t *testing.T) {
	t.Helper()
	ca := newTestCA(t)
	dir := t.TempDir()
	nl.certFile, nl.keyFile, nl.caFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: srvAddr.String()},
		IPAddresses: []net.IP{srvAddr.AsSlice(), nat11Addr.AsSlice()},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{nl.certFile, "CERTIFICATE", der}, {nl.keyFile, "EC PRIVATE KEY", keyDER}, {nl.caFile, "CERTIFICATE", ca.cert.Raw}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// config is the config of a lab icebox with its state in a fresh
// directory, HTTPS on port 443 with the lab's certificate, TURN on UDP and
// TCP 3478 and, by default, over TLS on 443 too (the port it shares with
// HTTPS), and extra (YAML lines) added.
//
// turn.allow_peers: the lab's internet uses the documentation ranges of
// RFC 5737, and the recommended turn.deny_peers refuses them (they are
// not globally reachable on the real internet). Here 198.51.100.0/24 is
// where the clients' NATs are, the addresses a relay must reach, as
// global addresses would be for a server on the internet, so the lab's
// operator allows that range, and only that: the clients' private LANs
// (10.0.0.0/8, their host candidates) stay refused, as they should.
func (nl *natLab) config(t *testing.T, extra string) string {
	return fmt.Sprintf(`http:
  listen: ":443"
  tls: {cert_file: %q, key_file: %q}
turn:
  listen: ["udp://0.0.0.0:3478", "tcp://0.0.0.0:3478"]
  allow_peers: [198.51.100.0/24]
metrics:
  listen: "127.0.0.1:9464"
shutdown_grace: 1s
state_dir: %q
%s`, nl.certFile, nl.keyFile, t.TempDir(), extra)
}

// plug connects ns to the internet: its wan0 gets addr (in one of the
// two /24s) and a default route through the internet namespace.
func (nl *natLab) plug(t *testing.T, ns *netlab.Netns, addr netip.Addr) {
	t.Helper()
	nl.mu.Lock()
	nl.ports++
	port := fmt.Sprintf("p%d", nl.ports)
	nl.mu.Unlock()
	netlab.Veth(t, nl.inet, port, ns, "wan0")
	nl.inet.IP(t, "link set "+port+" master br0")
	gw := "203.0.113.1"
	if inetClients.Contains(addr) {
		gw = "198.51.100.1"
	}
	ns.IP(t, "addr add "+addr.String()+"/24 dev wan0", "route add default via "+gw)
}

// client makes a client namespace behind a router of kind, both removed
// when t ends, and returns the client and its router's public address.
func (nl *natLab) client(t *testing.T, role string, kind natKind) (*netlab.Netns, netip.Addr) {
	t.Helper()
	nl.mu.Lock()
	nl.wans++
	nl.lans++
	wan := netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + nl.wans)})
	lan := nl.lans
	nl.mu.Unlock()
	if lan > 199 || wan.As4()[3] > 250 {
		t.Fatal("natlab: out of addresses")
	}
	router := nl.lab.Netns(t, role+"-nat")
	nl.plug(t, router, wan)
	cl := nl.lab.Netns(t, role)
	netlab.Veth(t, router, "lan0", cl, "eth0")
	router.IP(t, fmt.Sprintf("addr add 10.%d.0.1/24 dev lan0", lan))
	router.Router(t)
	router.Nft(t, kind.rules())
	cl.IP(t, fmt.Sprintf("addr add 10.%d.0.2/24 dev eth0", lan), fmt.Sprintf("route add default via 10.%d.0.1", lan))
	return cl, wan
}
