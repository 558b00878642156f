// Package daemon assembles one running icebox from a validated
// configuration: the STUN/TURN server (turnsrv), the signaling server
// (signaling) and the web server (web), with their listeners bound at New
// and served until the context given to Serve ends.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/internal/advertise"
	"github.com/icebox-project/icebox/internal/audit"
	"github.com/icebox-project/icebox/internal/clientaddr"
	"github.com/icebox-project/icebox/internal/connlimit"
	"github.com/icebox-project/icebox/internal/mintlimit"
	"github.com/icebox-project/icebox/internal/publicip"
	"github.com/icebox-project/icebox/internal/ratelog"
	"github.com/icebox-project/icebox/internal/rtc"
	"github.com/icebox-project/icebox/signaling"
	"github.com/icebox-project/icebox/turnsrv"
	"github.com/icebox-project/icebox/web"
)

// ShutdownTimeout bounds the HTTP drain on shutdown.
const ShutdownTimeout = 5 * time.Second

// Options are the parts of a Daemon that do not come from the config.
type Options struct {
	// Logger receives every log line. Nil: slog.Default().
	Logger *slog.Logger
	// Version is reported in icebox_build_info.
	Version string
	// Cores is the CPUs the relay plans for: turn.udp_sockets 0 means
	// one socket and relay loop per core (relayPlan). Zero:
	// runtime.GOMAXPROCS(0). The daemon never sets GOMAXPROCS: the
	// runtime's default follows a container's CPU limit as it changes,
	// which a set value would stop, and raising it by the relay loops
	// made no measurable difference (docs/BENCHMARKS.md, "GOMAXPROCS").
	Cores int
	// MetadataBase is where public_ip: metadata asks the cloud's instance
	// metadata service. Empty: publicip.DefaultMetadataBase
	// (http://169.254.169.254). Tests point it at a fake; it is used only
	// with public_ip: metadata.
	MetadataBase string
}

// Daemon is a bound, ready-to-serve icebox.
type Daemon struct {
	// bound is the configuration the listeners were opened with; keys
	// that would need new listeners are compared against it on Reload.
	bound      *config.Config
	rooms      atomic.Pointer[config.Signaling] // rooms and default password
	apiKeys    atomic.Pointer[[]string]
	grace      atomic.Int64 // shutdown_grace, nanoseconds
	onJoin     atomic.Bool  // turn.credentials is on-join
	ipv6Prefix atomic.Int64 // ipv6_client_prefix
	minting    *mintlimit.Limiter
	// branding is branding: (name, logo) as config read it; the pages
	// and /branding/logo read it per request.
	branding atomic.Pointer[web.Branding]

	log        *slog.Logger
	turn       *turnsrv.Server
	sig        *signaling.Server
	http       *http.Server
	httpLn     net.Listener
	metrics    *http.Server // nil when metrics.listen is ""
	metricsLn  net.Listener
	tls        *tlsSetup    // nil without a certificate
	redirect   *http.Server // plain HTTP → https and ACME HTTP-01; may be nil
	redirectLn net.Listener
	// capped are the HTTP listeners of our own (not the one shared with
	// TURN) under the connection caps; httpStats counts their refusals
	// and httpErrors net/http's error lines, which it logs at a bounded
	// rate.
	capped     []*connlimit.Listener
	httpStats  connlimit.Stats
	httpErrors *connlimit.ErrorLog
	adv        *advertise.Advertised // what it advertises (advertised.go)
	audit      *selfAudit            // the audit of itself, at start-up and after reloads
	cluster    *clusterPart          // nil on a single node (cluster.go)
	sfu        *sfuPart              // nil without an sfu: section (sfu.go)
	// now and sleep are the drain's clock (drainAllocations); tests set
	// them.
	now   func() time.Time
	sleep func(time.Duration)
}

// Credentials builds the TURN credentials of cfg: its secrets, or the one
// kept in state_dir, created on first use, when none is configured. Only
// the serving daemon (New) creates that file; commands use
// ExistingCredentials.
func Credentials(cfg *config.Config) (*turnsrv.Credentials, error) {
	secrets := cfg.TURN.Secrets
	if len(secrets) == 0 {
		s, err := turnsrv.LoadOrCreateSecret(cfg.StateDir)
		if err != nil {
			return nil, fmt.Errorf("turn.secrets is empty and the generated secret cannot be kept: %w", err)
		}
		secrets = []string{s}
	}
	return turnsrv.NewCredentials(cfg.TURN.Realm, secrets, cfg.TURN.CredentialTTL, cfg.TURN.Users)
}

// ErrNoSecret: turn.secrets is empty and no serving icebox has generated
// a secret in state_dir yet.
var ErrNoSecret = errors.New("no TURN secret")

// ExistingCredentials is Credentials for commands that mint or check
// without serving (icebox credentials, icebox selftest): it never
// creates a file or directory. With turn.secrets empty and no generated
// secret in state_dir it fails with ErrNoSecret, naming the directory.
func ExistingCredentials(cfg *config.Config) (*turnsrv.Credentials, error) {
	if len(cfg.TURN.Secrets) == 0 {
		path := filepath.Join(cfg.StateDir, turnsrv.SecretFile)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: set turn.secrets or start icebox once to generate one in %s", ErrNoSecret, cfg.StateDir)
		}
		// The file exists, so this only reads and checks it.
	}
	return Credentials(cfg)
}

// ResolvePublicIP is the address public_ip stands for, and where it came
// from: the configured address; with public_ip: metadata the cloud's
// instance metadata service at base (empty: publicip.DefaultMetadataBase),
// asked for at most publicip.MetadataTimeout, falling back to auto; or
// auto (publicip.Auto). Only public_ip: metadata sends anything.
func ResolvePublicIP(ctx context.Context, p *config.Parsed, base string) publicip.Result {
	if p.PublicIP.IsValid() {
		return publicip.Result{Addr: p.PublicIP, Source: publicip.SourceConfig}
	}
	if base == "" {
		base = publicip.DefaultMetadataBase
	}
	return publicip.Resolve(ctx, p.PublicIPMode == config.PublicIPMetadata, base, turnListenAddrs(p), nil)
}

// turnListenAddrs are the TURN listeners' bind addresses.
func turnListenAddrs(p *config.Parsed) []string {
	addrs := make([]string, 0, len(p.TURNListen))
	for _, l := range p.TURNListen {
		addrs = append(addrs, l.Addr)
	}
	return addrs
}

// logPublicIP says which address peers are told to reach the relay at,
// and why.
func logPublicIP(log *slog.Logger, mode string, r publicip.Result) {
	args := []any{"address", r.Addr.String(), "source", string(r.Source), "public_ip", mode}
	if r.Provider != "" {
		args = append(args, "provider", r.Provider)
	}
	if r.MetadataErr != nil {
		args = append(args, "metadata_error", r.MetadataErr.Error())
	}
	log.Info("public ip", args...)
	if r.Source == publicip.SourceLoopback {
		log.Warn("public ip is 127.0.0.1: only clients on this host can reach the relay; set public_ip")
	}
}

// New binds every listener. On error nothing is left open.
func New(cfg *config.Config, opts Options) (d *Daemon, err error) {
	p := &cfg.Parsed
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	var closers []io.Closer
	defer func() {
		if err != nil {
			for _, c := range closers {
				c.Close()
			}
		}
	}()
	creds, err := Credentials(cfg)
	if err != nil {
		return nil, err
	}
	d = &Daemon{bound: cfg, log: log, now: time.Now, sleep: time.Sleep}
	d.audit = newSelfAudit(cfg)
	d.rooms.Store(&cfg.Signaling)
	d.apiKeys.Store(&cfg.HTTP.APIKeys)
	d.setBranding(cfg)
	d.grace.Store(int64(cfg.ShutdownGrace))
	d.onJoin.Store(cfg.TURN.Credentials == config.CredentialsOnJoin)
	d.ipv6Prefix.Store(int64(cfg.IPv6ClientPrefix))
	d.minting = mintlimit.New(float64(cfg.TURN.CredentialsPerMinute), cfg.TURN.CredentialsBurst)
	d.minting.SetKeyer(cfg.ClientKeyer())
	if p.TLS {
		if d.tls, err = newTLSSetup(cfg, log.With("component", "tls")); err != nil {
			return nil, err
		}
	}
	listeners := make([]turnsrv.Listener, 0, len(p.TURNListen))
	for _, l := range p.TURNListen {
		tl := turnsrv.Listener{Network: l.Network, Addr: l.Addr, ShareHTTP: l.Share,
			ICETCP: l.Share && p.SFU != nil && p.SFU.ICETCP}
		switch {
		case l.Network == "tls" && l.Share:
			tl.TLS = d.tls.sharedConfig()
		case l.Network == "tls":
			tl.TLS = d.tls.turnConfig()
		}
		listeners = append(listeners, tl)
	}
	public := ResolvePublicIP(context.Background(), p, opts.MetadataBase)
	logPublicIP(log, p.PublicIPMode, public)
	sfuConn, err := openSFUSocket(p)
	if err != nil {
		return nil, err
	}
	if sfuConn != nil {
		closers = append(closers, sfuConn)
	}
	sfuPort, sfuAddrList := sfuAddrs(sfuConn)
	cores := opts.Cores
	if cores <= 0 {
		cores = runtime.GOMAXPROCS(0)
	}
	udpSockets, relayLoops := relayPlan(cfg.TURN.UDPSockets, cores)
	var relays *turnsrv.RelayPeers // the other nodes' relays, for the peer filter
	if p.Cluster != nil {
		relays = &turnsrv.RelayPeers{}
	}
	tc := turnsrv.Config{
		Realm:                   cfg.TURN.Realm,
		Listeners:               listeners,
		PublicIP:                public.Addr,
		RelayMinPort:            p.RelayMin,
		RelayMaxPort:            p.RelayMax,
		Credentials:             creds,
		DenyPeers:               p.DenyPeers,
		AllowPeers:              p.AllowPeers,
		MaxAllocationsPerUser:   cfg.TURN.MaxAllocationsPerUser,
		MaxAllocations:          cfg.TURN.MaxAllocations,
		MaxAllocationsPerIP:     cfg.TURN.MaxAllocationsPerIP,
		MaxTCPConnectionsPerIP:  cfg.TURN.MaxTCPConnectionsPerIP,
		MaxTCPConnections:       cfg.TURN.MaxTCPConnections,
		IPv6ClientPrefix:        cfg.IPv6ClientPrefix,
		IPv6AggregatePrefix:     cfg.IPv6AggregatePrefix,
		IPv6AggregateFactor:     cfg.IPv6AggregateFactor,
		UDPSockets:              udpSockets,
		RelayLoops:              relayLoops,
		MaxBitratePerAllocation: p.MaxBitrate,
		Logger:                  log.With("component", "turn"),
		ClusterRelays:           relays,
		SFUPort:                 sfuPort,
		SFUAddrs:                sfuAddrList,
	}
	if d.turn, err = turnsrv.New(tc); err != nil {
		return nil, err
	}
	closers = append(closers, d.turn)
	host := ""
	if d.tls != nil {
		host = d.tls.host
	}
	d.adv = advertise.New(d.turn.PublicIP(), host, d.turn.Endpoints())
	adv := d.adv
	if d.cluster, err = newCluster(cfg, clusterRelay(adv, p), relays, log); err != nil {
		return nil, err
	}
	if d.cluster != nil {
		closers = append(closers, d.cluster)
	}
	log.Info("turn relay loops", "relay_loops", d.turn.RelayLoops(), "cores", cores, "gomaxprocs", runtime.GOMAXPROCS(0))
	if w := audit.EphemeralWarning(p.RelayMin, p.RelayMax); w != "" {
		log.Warn("turn relay ports are also ephemeral ports", "detail", w)
	}
	ts := d.turn
	iceServers := func(user string) ([]rtc.ICEServer, time.Duration) {
		username, password, ttl := ts.Mint(user)
		return adv.ICEServers(username, password), ttl
	}
	if d.sfu, err = newSFUPart(cfg, sfuConn, ts.ICETCPListener(), adv.PublicIP, log.With("component", "sfu")); err != nil {
		return nil, err
	}
	if d.sfu != nil {
		closers = append(closers, d.sfu)
	}
	d.sig = signaling.New(signaling.Config{
		SFU:            d.sfu.signalingConfig(d, cfg),
		Limits:         signalingLimits(cfg),
		RoomPassword:   d.roomPassword,
		ICEServers:     iceServers,
		Minting:        d.minting,
		TrustedProxies: p.TrustedProxies,
		Logger:         log.With("component", "signaling"),
		Cluster:        d.cluster.signalingCluster(),
	})
	if err := d.cluster.start(d.sig); err != nil {
		return nil, err
	}
	handler := web.New(web.Config{ICEServers: iceServers, WebSocket: d.sig, Logger: log.With("component", "web"),
		APIKeys: func() []string { return *d.apiKeys.Load() },
		Healthy: func() error { return ts.Healthy(2 * time.Second) },
		Minting: d.minting,
		ClientKey: func(r *http.Request) string {
			return clientaddr.Keyer{IPv6Prefix: int(d.ipv6Prefix.Load())}.RequestKey(r, p.TrustedProxies)
		},
		PageCredentials:   d.pageCredentials,
		SFUCheck:          d.sfu.check(),
		PasswordRequired:  func(room string) bool { return d.roomPassword(room) != "" },
		STUNServers:       adv.STUNServers,
		CredentialsOnJoin: d.onJoin.Load,
		Branding:          d.branding.Load,
	})
	scheme := "http"
	if d.tls != nil {
		scheme = "https"
	}
	httpLog := ratelog.New(log.With("component", "http"), 0, nil)
	d.httpErrors = connlimit.NewErrorLog(httpLog)
	caps := httpCaps(cfg)
	listen := func(key, addr string) (*connlimit.Listener, error) {
		ln, err := net.Listen("tcp", addr) //nolint:noctx
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", key, addr, err)
		}
		cl := connlimit.NewListener(ln, ln.(*net.TCPListener), caps, &d.httpStats, httpLog)
		closers = append(closers, cl)
		d.capped = append(d.capped, cl)
		return cl, nil
	}
	shared := "no"
	var connState func(net.Conn, http.ConnState)
	if ln := ts.HTTPListener(); ln != nil {
		// TURN and HTTP on one socket (config: turn.listen naming
		// http.listen); TLS, if any, is done there, and so are the caps.
		d.httpLn, shared, connState = ln, "turn", ts.HTTPConnState
	} else {
		cl, err := listen("http.listen", cfg.HTTP.Listen)
		if err != nil {
			return nil, err
		}
		d.httpLn, connState = cl, cl.ConnState
		if d.tls != nil {
			d.httpLn = tls.NewListener(cl, d.tls.config)
		}
	}
	d.http = d.newHTTPServer(withRequestDeadlines(withTLSState(handler), requestBodyTimeout, responseWriteTimeout), connState)
	d.http.ConnContext = tlsStateContext
	if r := cfg.HTTP.TLS.RedirectListen; d.tls != nil && r != nil && *r != "" {
		cl, err := listen("http.tls.redirect_listen", *r)
		if err != nil {
			return nil, err
		}
		d.redirectLn = cl
		d.redirect = d.newHTTPServer(d.tls.redirect, cl.ConnState)
		log.Info("http redirect listening", "addr", d.redirectLn.Addr().String())
	}
	if p.MetricsAddr != "" {
		cl, err := listen("metrics.listen", p.MetricsAddr)
		if err != nil {
			return nil, err
		}
		d.metricsLn = cl
		d.metrics = d.newHTTPServer(debugHandler(d.cluster.handler(metricsHandler(ts, d.sig, d.minting, opts.Version, &d.audit.failures, &d.httpStats, append(d.cluster.collectors(), d.sfu.collectors()...)...), d.sig), d.cluster), cl.ConnState)
		log.Info("metrics listening", "addr", d.metricsLn.Addr().String())
	}
	log.Info("http listening", "addr", d.httpLn.Addr().String(), "url", scheme+"://"+d.httpLn.Addr().String()+"/",
		"shared_with", shared)
	return d, nil
}

// HTTPIdleTimeout is how long an HTTP connection may wait for its next
// request (keep-alive) before the server closes it: enough for a page's
// requests that follow one another, short enough that idle connections
// held on purpose cost their holder a new connection (and TLS handshake)
// twice a minute. ReadHeaderTimeout (10 s) bounds the wait for a
// connection's first request.
const HTTPIdleTimeout = 30 * time.Second

// newHTTPServer is a web server for h whose connections report their
// states to connState (the connection caps' evictions), with net/http's
// error lines logged at a bounded rate.
func (d *Daemon) newHTTPServer(h http.Handler, connState func(net.Conn, http.ConnState)) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       HTTPIdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          stdlog.New(d.httpErrors, "", 0),
		ConnState:         connState,
	}
}

// httpCaps are the caps of the HTTP listeners: those of TURN's TCP
// connections, which the port shared with TURN applies to its HTTP
// connections too (turn.max_tcp_connections_per_ip,
// turn.max_tcp_connections: 0 automatic, -1 none), counted apart from
// TURN's and per listener.
func httpCaps(cfg *config.Config) connlimit.Caps {
	total := cfg.TURN.MaxTCPConnections
	if total == 0 {
		total = turnsrv.AutoMaxTCPConnections()
	}
	return connlimit.Caps{PerIP: cfg.TURN.MaxTCPConnectionsPerIP, Total: total,
		Keyer: clientaddr.Keyer{IPv6Prefix: cfg.IPv6ClientPrefix}}
}

// MetricsAddr is the bound metrics address, nil when metrics are off.
func (d *Daemon) MetricsAddr() net.Addr {
	if d.metricsLn == nil {
		return nil
	}
	return d.metricsLn.Addr()
}

// RedirectAddr is the bound plain-HTTP redirect address, nil when off.
func (d *Daemon) RedirectAddr() net.Addr {
	if d.redirectLn == nil {
		return nil
	}
	return d.redirectLn.Addr()
}

// HTTPAddr is the bound web server address.
func (d *Daemon) HTTPAddr() net.Addr { return d.httpLn.Addr() }

// TURN is the running STUN/TURN server.
func (d *Daemon) TURN() *turnsrv.Server { return d.turn }

// Signaling is the running signaling server.
func (d *Daemon) Signaling() *signaling.Server { return d.sig }

// Serve serves until ctx ends, then shuts down: TURN refuses new
// allocations, WebSockets are told (close 1001) and closed, and with them
// HTTP drains, for up to ShutdownTimeout together, live allocations get up to shutdown_grace to end,
// and TURN closes. It returns nil after a clean shutdown.
func (d *Daemon) Serve(ctx context.Context) error {
	errc := make(chan error, 3)
	go func() { errc <- d.http.Serve(d.httpLn) }()
	if d.metrics != nil {
		go func() { errc <- d.metrics.Serve(d.metricsLn) }()
	}
	if d.redirect != nil {
		go func() { errc <- d.redirect.Serve(d.redirectLn) }()
	}
	if d.tls != nil && d.tls.files != nil {
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		go d.tls.files.watch(wctx)
	}
	checkCtx, stopChecks := context.WithCancel(ctx)
	defer stopChecks()
	var selfTest, audits sync.WaitGroup
	selfTest.Go(func() { d.startupSelfTest(checkCtx) })
	audits.Go(func() { d.auditLoop(checkCtx) })
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	stopChecks()
	// The self-test relays through TURN: it ends (cut short, and saying
	// so) before TURN starts to shut down, never failing against it.
	selfTest.Wait()
	d.log.Info("shutting down", "allocations", d.turn.AllocationCount())
	d.turn.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := d.sig.Close(sctx); err != nil {
		d.log.Warn("signaling connections closed outright", "error", err)
	}
	if err := d.cluster.close(sctx); err != nil {
		d.log.Warn("cluster: not every peer's departure was told", "error", err)
	}
	shutErr := d.http.Shutdown(sctx)
	d.drainAllocations(time.Duration(d.grace.Load()))
	for _, srv := range []*http.Server{d.metrics, d.redirect} {
		if srv != nil {
			shutErr = errors.Join(shutErr, srv.Shutdown(sctx))
		}
	}
	turnErr := errors.Join(d.turn.Close(), d.sfu.Close())
	audits.Wait() // ends soon after stopChecks: every step is bounded by its context
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return errors.Join(shutErr, turnErr)
}

// IdleDrain is how long the relay may have carried nothing before a
// shutdown stops waiting for live allocations: 30 s without a datagram
// relayed means no call is going on (turnsrv.Server.LastRelayed), only
// allocations of clients that left without deleting them.
const IdleDrain = 30 * time.Second

// drainAllocations waits up to grace for live allocations to end, but
// not for allocations while the relay has carried nothing for IdleDrain:
// those are closed at once (with TURN). The relay is judged as a whole,
// so one live call holds every allocation until it ends or grace is over.
func (d *Daemon) drainAllocations(grace time.Duration) {
	deadline := d.now().Add(grace)
	for n := d.turn.AllocationCount(); n > 0; n = d.turn.AllocationCount() {
		now := d.now()
		if last := d.turn.LastRelayed(); now.Sub(last) >= IdleDrain {
			idle := "never"
			if !last.IsZero() {
				idle = now.Sub(last).Round(time.Second).String()
			}
			d.log.Info("shutdown: allocations relayed nothing lately; closing them at once", "allocations", n,
				"last_relayed_ago", idle)
			return
		}
		if !now.Before(deadline) {
			d.log.Info("shutdown grace over; closing allocations", "allocations", n)
			return
		}
		d.sleep(100 * time.Millisecond)
	}
}

// Healthy reports whether the web server answers its own /healthz, which
// also checks every TURN listener (turnsrv.Server.Healthy).
func (d *Daemon) Healthy() bool {
	c := http.Client{Timeout: 5 * time.Second}
	url := "http://" + d.httpLn.Addr().String() + "/healthz"
	if d.tls != nil {
		url = "https://" + d.httpLn.Addr().String() + "/healthz"
		// A liveness probe of our own listener by address: the name on the
		// certificate cannot match it, and nothing secret is sent.
		c.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec
	}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// startupSelfTest relays one packet through our own TURN at the
// advertised address and logs the outcome, so a wrong public_ip or a
// closed port shows before the first call.
func (d *Daemon) startupSelfTest(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := d.SelfTest(ctx)
	switch {
	case errors.Is(err, turnsrv.ErrNoListener):
		d.log.Info("self-test skipped: no UDP listener")
	case err != nil && errors.Is(context.Cause(ctx), context.Canceled):
		d.log.Info("self-test cut short by shutdown", "server", res.Server)
	case err != nil:
		d.log.Warn("self-test failed: clients may not reach the relay", "server", res.Server, "error", err)
	default:
		d.log.Info("self-test passed", "server", res.Server, "relayed_address", res.RelayedAddr,
			"round_trip", res.RoundTripped.Round(time.Microsecond).String())
	}
}

// SelfTest relays one packet through our own TURN at the advertised
// address of its first UDP listener (Advertised) and back. Errors:
// turnsrv.ErrNoListener without a UDP listener, or the step that failed.
func (d *Daemon) SelfTest(ctx context.Context) (turnsrv.SelfTestResult, error) {
	at, ok := d.adv.First("udp")
	if !ok {
		return turnsrv.SelfTestResult{}, turnsrv.ErrNoListener
	}
	return d.turn.SelfTest(ctx, at)
}

// roomPassword is the password room requires: its own from
// signaling.rooms, else signaling.default_room_password, else none.
func (d *Daemon) roomPassword(room string) string {
	sc := d.rooms.Load()
	if pw := sc.Rooms[room].Password; pw != "" {
		return pw
	}
	return sc.DefaultRoomPassword
}

// pageCredentials reports whether the call page of room embeds TURN
// credentials: only with turn.credentials on-page and for a room without
// a password. Otherwise the browser gets them in welcome, after a join.
func (d *Daemon) pageCredentials(room string) bool {
	return !d.onJoin.Load() && d.roomPassword(room) == ""
}

// signalingLimits maps the config's caps (-1: none) to signaling.Limits
// (0: none).
func signalingLimits(cfg *config.Config) signaling.Limits {
	noCap := func(n int) int {
		if n < 0 {
			return 0
		}
		return n
	}
	return signaling.Limits{
		MaxPeersPerRoom:     cfg.Signaling.MaxPeersPerRoom,
		MaxRooms:            noCap(cfg.Signaling.MaxRooms),
		MaxConnectionsPerIP: noCap(cfg.Signaling.MaxConnectionsPerIP),
		IPv6ClientPrefix:    cfg.IPv6ClientPrefix,
		IPv6AggregatePrefix: cfg.IPv6AggregatePrefix,
		IPv6AggregateFactor: cfg.IPv6AggregateFactor,
		AllowedOrigins:      cfg.HTTP.AllowedOrigins,
	}
}
