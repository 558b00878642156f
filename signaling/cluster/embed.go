package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"
)

// ClusterName is the NATS cluster name every embedded server uses.
const ClusterName = "icebox"

// bcryptCost is the cost of the secret's hash. The secret is long and
// random (config checks at least 16 bytes), so the hash need not slow
// guessing; a low cost keeps each connection's check quick.
const bcryptCost = 6

// natsUser is the user name the node's client connection (and, with an
// operator's route certificates, the routes) authenticate with; the
// passwords are derived from the cluster secret (keys.go).
const natsUser = "icebox"

// EmbedConfig configures an embedded nats-server.
type EmbedConfig struct {
	// Name is the server name, unique in the cluster (the node name).
	Name string
	// Listen is host:port of the route listener (default port 6222).
	// Port 0 picks a free port at start (tests).
	Listen string
	// Routes are the other nodes' route URLs (nats-route://host:port).
	// Empty: the node waits for the others to route to it.
	Routes []*url.URL
	// Secret is the cluster secret, from which the route certificates (or
	// the route password) and the client password are derived; it is
	// never sent anywhere itself. Required.
	Secret string
	// TLS, when set, is the routes' mutual TLS from an operator's files
	// (config cluster.tls); each route then also authenticates with a
	// password derived from Secret, inside TLS. Nil (the default): mutual
	// TLS with certificates derived from Secret (SecretTLS), which alone
	// authenticate a route: its CONNECT carries no password.
	TLS *tls.Config
	// StoreDir holds JetStream's state (its meta data; rooms are kept in
	// memory).
	StoreDir string
	// Logger receives nats-server's warnings and errors (notices at
	// debug). Nil: slog.Default().
	Logger *slog.Logger
}

// Embedded is a running embedded nats-server.
type Embedded struct {
	srv       *server.Server
	opts      *server.Options
	secret    string
	routeUser *url.Userinfo // nil with certificates derived from the secret
	mu        sync.Mutex    // guards opts during ReloadRoutes
}

// Embed starts a nats-server in this process with JetStream, a route
// listener on cfg.Listen and routes to cfg.Routes, every route over
// mutual TLS (EmbedConfig.TLS). Its client listener is on 127.0.0.1 at a
// random port, behind a password derived from the secret: nats-server
// opens its route listener only once its client listener is bound. It
// returns when the server accepts connections, or an error naming what
// failed (at most 10 s).
func Embed(cfg EmbedConfig) (*Embedded, error) {
	if cfg.Secret == "" {
		return nil, errors.New("cluster: no secret")
	}
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("cluster.listen %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("cluster.listen %q: bad port", cfg.Listen)
	}
	if port == 0 {
		// nats-server's "random port" (-1) is bound after the server has
		// told itself its routes; a lone node needs a route to itself
		// (below) before that, so the port is chosen here.
		if port, err = freePort(host); err != nil {
			return nil, fmt.Errorf("cluster.listen %q: %w", cfg.Listen, err)
		}
	}
	tlsCfg, routeUser := cfg.TLS, (*url.Userinfo)(nil)
	if tlsCfg == nil {
		if tlsCfg, err = SecretTLS(cfg.Secret, cfg.Name); err != nil {
			return nil, err
		}
	} else {
		routeUser = url.UserPassword(natsUser, routePassword(cfg.Secret))
	}
	routes := withRouteUser(cfg.Routes, routeUser)
	if len(routes) == 0 {
		// JetStream's clustered mode needs at least one configured route;
		// a route to oneself is recognised and dropped by nats-server, so
		// a seed node listing no others still runs clustered and others
		// join it.
		self := host
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			self = "127.0.0.1"
		}
		routes = append(routes, &url.URL{Scheme: "nats-route", User: routeUser,
			Host: net.JoinHostPort(self, strconv.Itoa(port))})
	}
	// Clients are checked against a bcrypt hash of their password; a route
	// password (with an operator's certificates) is compared as given,
	// and nats-server also sends it, inside TLS, when it dials the routes
	// it learns of from the others.
	hash, err := bcrypt.GenerateFromPassword([]byte(clientPassword(cfg.Secret)), bcryptCost)
	if err != nil {
		return nil, fmt.Errorf("cluster: secret: %w", err)
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		Username:   natsUser,
		Password:   string(hash),
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		// Rooms live in a memory stream; this bounds it.
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  64 << 20,
		MaxPayload:         1 << 20,
		Cluster: server.ClusterOpts{
			Name: ClusterName, Host: host, Port: port,
			TLSConfig: tlsCfg, TLSTimeout: 5,
		},
		Routes: routes,
	}
	if routeUser != nil {
		opts.Cluster.Username = natsUser
		opts.Cluster.Password, _ = routeUser.Password()
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("cluster: nats-server: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	srv.SetLoggerV2(natsLogger{log.With("component", "nats")}, false, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("cluster: nats-server did not start listening on %s", net.JoinHostPort(host, strconv.Itoa(port)))
	}
	return &Embedded{srv: srv, opts: opts, secret: cfg.Secret, routeUser: routeUser}, nil
}

// withRouteUser copies routes, adding user to those without credentials
// (nil user: none added).
func withRouteUser(routes []*url.URL, user *url.Userinfo) []*url.URL {
	out := make([]*url.URL, 0, len(routes)+1)
	for _, r := range routes {
		u := *r
		if u.User == nil {
			u.User = user
		}
		out = append(out, &u)
	}
	return out
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0")) //nolint:noctx
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Server is the nats-server, for in-process client connections.
func (e *Embedded) Server() *server.Server { return e.srv }

// RouteAddr is the bound route listener address.
func (e *Embedded) RouteAddr() *net.TCPAddr { return e.srv.ClusterAddr() }

// Routes is the number of routes to other servers now connected.
func (e *Embedded) Routes() int { return e.srv.NumRoutes() }

// ReloadRoutes replaces the configured routes (SIGHUP): new ones are
// dialled, removed ones closed. Credentials are added as in Embed.
func (e *Embedded) ReloadRoutes(routes []*url.URL) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	o := e.opts.Clone()
	if len(routes) > 0 {
		o.Routes = withRouteUser(routes, e.routeUser)
	}
	if err := e.srv.ReloadOptions(o); err != nil {
		return fmt.Errorf("cluster: reload routes: %w", err)
	}
	e.opts = o
	return nil
}

// Shutdown stops the server and waits for it.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// natsLogger bridges nats-server's logger to slog, one level down:
// nats-server warns of what is routine in a cluster starting or losing a
// node (waiting for routes, snapshots, catch-ups), and its errors include
// routes that cannot be dialled yet. Notices go to debug.
type natsLogger struct{ log *slog.Logger }

func (l natsLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Warnf(format string, v ...any)   { l.log.Info(fmt.Sprintf(format, v...)) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Errorf(format string, v ...any)  { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l natsLogger) Debugf(format string, v ...any)  {}
func (l natsLogger) Tracef(format string, v ...any)  {}
