package config

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/icebox-project/icebox/internal/roomname"
)

// DefaultClusterListen is cluster.listen's default: the NATS route port.
const DefaultClusterListen = "0.0.0.0:6222"

// MaxClusterSecretSize bounds cluster.secret_file: 4 KiB.
const MaxClusterSecretSize = 4 << 10

// Cluster makes this icebox one node of several (docs: README "Running
// several nodes"): rooms span nodes over NATS. Absent (nil): a single
// node; no NATS is started and no port opened.
type Cluster struct {
	// Node is this node's name, unique in the cluster: 1 to 64
	// characters of A-Z a-z 0-9 - _. Default: the host name, with other
	// characters replaced by "-".
	Node string `yaml:"node"`
	// Listen is host:port of the embedded NATS route listener, which the
	// other nodes' routes connect to. Default "0.0.0.0:6222"; port 0
	// picks a free port at start. Unused with NATSURL.
	Listen string `yaml:"listen"`
	// Routes are the other nodes' route listeners, as
	// "nats-route://host:port" URLs. A node may list none and wait for
	// the others to route to it. Unused with NATSURL. A reload applies a
	// change.
	Routes []string `yaml:"routes"`
	// SecretFile holds the shared secret (at least 16 bytes, surrounding
	// white space ignored) from which the route certificates, the NATS
	// client password and the nodes' message keys are derived: the same
	// file on every node. Required.
	SecretFile string `yaml:"secret_file"`
	// TLS is mutual TLS on the routes with an operator's certificates:
	// this node's certificate and key, and the CA that signs every node's
	// certificate (each route also authenticates, inside TLS, with a
	// password derived from the secret). All three or none. None (the
	// default): routes still use mutual TLS, with certificates derived
	// from the secret on each node, and carry no password: the secret
	// never crosses the wire. With NATSURL the files secure the
	// connection to that NATS instead.
	TLS ClusterTLS `yaml:"tls"`
	// NATSURL is an operator's NATS (with JetStream) to use instead of
	// embedding one: "nats://host:4222" or "tls://host:4222". The node
	// authenticates as user "icebox" with the secret.
	NATSURL string `yaml:"nats_url"`
}

// ClusterTLS configures mutual TLS between nodes (PEM files).
type ClusterTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	CAFile   string `yaml:"ca_file"`
}

// ParsedCluster is cluster turned into the values the daemon uses.
type ParsedCluster struct {
	// Node is the node name (cluster.node or the host name).
	Node string
	// Secret is the content of cluster.secret_file, trimmed.
	Secret string
	// Routes are cluster.routes parsed.
	Routes []*url.URL
}

// validateCluster checks the cluster section and what it requires of the
// rest; nil c.Cluster is a single node and checks nothing.
func (c *Config) validateCluster(p *Parsed) *Error {
	cl := c.Cluster
	if cl == nil {
		return nil
	}
	pc := &ParsedCluster{Node: cl.Node}
	if pc.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return bad("cluster.node", "not set and the host name is unknown: %v", err)
		}
		pc.Node = nodeName(h)
	} else if !roomname.Valid(pc.Node) {
		return bad("cluster.node", "%q: a node name is 1 to %d characters of A-Z a-z 0-9 - _", cl.Node, roomname.MaxLength)
	}
	if cl.Listen == "" {
		cl.Listen = DefaultClusterListen
	}
	if err := checkHostPort(cl.Listen); err != nil {
		return bad("cluster.listen", "%v", err)
	}
	for i, r := range cl.Routes {
		u, err := parseRoute(r)
		if err != nil {
			return bad(fmt.Sprintf("cluster.routes[%d]", i), "%v", err)
		}
		pc.Routes = append(pc.Routes, u)
	}
	if cl.SecretFile == "" {
		return bad("cluster.secret_file", "required with cluster: the shared secret that authenticates the nodes")
	}
	secret, err := readSecret(cl.SecretFile)
	if err != nil {
		return bad("cluster.secret_file", "%v", err)
	}
	pc.Secret = secret
	t := cl.TLS
	if set := btoi(t.CertFile != "") + btoi(t.KeyFile != "") + btoi(t.CAFile != ""); set != 0 && set != 3 {
		return bad("cluster.tls", "cert_file, key_file and ca_file go together (mutual TLS)")
	}
	if cl.NATSURL != "" {
		u, err := url.Parse(cl.NATSURL)
		if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" || u.User != nil {
			return bad("cluster.nats_url", "%q is not a URL like nats://host:4222 or tls://host:4222 (without credentials: the secret is used)", cl.NATSURL)
		}
		if len(cl.Routes) > 0 {
			return bad("cluster.routes", "routes are for the embedded NATS; with cluster.nats_url leave them out")
		}
	}
	// Every node must accept every other node's TURN credentials: the
	// secrets are shared, so one generated on a node of its own will not do.
	if len(c.TURN.Secrets) == 0 {
		return bad("turn.secrets", "a cluster needs turn.secrets set, the same on every node (a generated secret is this node's alone)")
	}
	p.Cluster = pc
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// parseRoute checks a route URL: nats-route://host:port, without path.
func parseRoute(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "nats-route" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("%q is not a route like nats-route://vm2:6222", s)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%q: leave credentials out; cluster.secret_file authenticates the routes", s)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return nil, fmt.Errorf("%q: needs host:port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("%q: port must be 1 to 65535", s)
	}
	u.Path = ""
	return u, nil
}

func readSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxClusterSecretSize+1))
	if err != nil {
		return "", err
	}
	if len(b) > MaxClusterSecretSize {
		return "", fmt.Errorf("%s is larger than %d bytes", path, MaxClusterSecretSize)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < MinSecretLength {
		return "", fmt.Errorf("%s: the secret must be at least %d characters", path, MinSecretLength)
	}
	if strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("%s: the secret must be one line", path)
	}
	return s, nil
}

// nodeName turns a host name into a node name: other characters become
// "-", and it is cut to roomname.MaxLength.
func nodeName(host string) string {
	b := []byte(host)
	for i, c := range b {
		if !roomname.NameByte(c) {
			b[i] = '-'
		}
	}
	if len(b) > roomname.MaxLength {
		b = b[:roomname.MaxLength]
	}
	if len(b) == 0 {
		return "node"
	}
	return string(b)
}
