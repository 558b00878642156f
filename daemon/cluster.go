package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/internal/advertise"
	"github.com/icebox-project/icebox/internal/relayrange"
	"github.com/icebox-project/icebox/signaling"
	"github.com/icebox-project/icebox/signaling/cluster"
	"github.com/icebox-project/icebox/turnsrv"
)

// clusterPart is a node's membership of a cluster (config cluster):
// the embedded NATS (nil with cluster.nats_url), the cluster.Node that
// links the signaling rooms, and the other nodes' relay ranges for the
// TURN peer filter. A Daemon without a cluster section has none, and
// starts no NATS and opens no port.
type clusterPart struct {
	emb     *cluster.Embedded
	node    *cluster.Node
	relays  *turnsrv.RelayPeers
	latency prometheus.Histogram
	log     *slog.Logger
	mu      sync.Mutex     // guards cfg
	cfg     *config.Config // the configuration routes were last applied from
}

// newCluster joins the cluster of cfg (nil without a cluster section):
// the embedded NATS is started and bound (or the operator's NATS
// dialled), and the node built; startCluster starts it once signaling
// exists. relay is this node's TURN relayed address and ports (its
// heartbeat's), relays the TURN peer filter's ranges of the other nodes,
// which the node keeps up to date.
func newCluster(cfg *config.Config, relay relayrange.RelayRange, relays *turnsrv.RelayPeers, log *slog.Logger) (*clusterPart, error) {
	pc := cfg.Parsed.Cluster
	if pc == nil {
		return nil, nil
	}
	log = log.With("component", "cluster")
	cp := &clusterPart{relays: relays, log: log, cfg: cfg,
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "icebox_cluster_signal_latency_seconds",
			Help:    "Delivery time of signals from peers on other nodes: from the sending node's clock at sending to this node's at arrival.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, 1},
		})}
	tlsCfg, err := clusterTLS(cfg.Cluster.TLS)
	if err != nil {
		return nil, err
	}
	nc, err := cp.connect(cfg, pc, tlsCfg, log)
	if err != nil {
		return nil, err
	}
	cp.node, err = cluster.New(cluster.Config{Name: pc.Node, Secret: pc.Secret, Conn: nc, Relay: relay, Logger: log,
		ObserveLatency: func(d time.Duration) { cp.latency.Observe(d.Seconds()) }})
	if err != nil {
		nc.Close()
		cp.shutdownNATS()
		return nil, err
	}
	cp.node.OnNodes(func(rs []relayrange.RelayRange) {
		// A node's relay that is no peer here (a private address without
		// allow_peers, this host outside turn.relay_ports): clients of the
		// two nodes cannot relay to each other. Logged when the nodes change.
		for r, why := range cp.relays.Set(rs) {
			log.Warn("cluster: another node's relay is not a TURN peer here; calls relayed between the two nodes fail",
				"relay", r.Addr.String(), "ports", fmt.Sprintf("%d-%d", r.Min, r.Max), "reason", string(why))
		}
	})
	return cp, nil
}

// connect starts the embedded NATS and connects to it in-process, or
// dials cluster.nats_url.
func (cp *clusterPart) connect(cfg *config.Config, pc *config.ParsedCluster, tlsCfg *tls.Config, log *slog.Logger) (*nats.Conn, error) {
	if u := cfg.Cluster.NATSURL; u != "" {
		return cluster.Connect(u, pc.Node, pc.Secret, tlsCfg, log)
	}
	dir := natsStoreDir(cfg)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: state_dir: %w", err)
	}
	emb, err := cluster.Embed(cluster.EmbedConfig{Name: pc.Node, Listen: cfg.Cluster.Listen, Routes: pc.Routes,
		Secret: pc.Secret, TLS: tlsCfg, StoreDir: dir, Logger: log})
	if err != nil {
		return nil, err
	}
	cp.emb = emb
	log.Info("cluster listening", "node", pc.Node, "addr", emb.RouteAddr().String(), "routes", len(pc.Routes))
	nc, err := cluster.ConnectEmbedded(emb, pc.Node, log)
	if err != nil {
		emb.Shutdown()
		return nil, err
	}
	return nc, nil
}

func (cp *clusterPart) shutdownNATS() {
	if cp.emb != nil {
		cp.emb.Shutdown()
	}
}

// clusterTLS loads the routes' mutual TLS, nil when not configured.
func clusterTLS(t config.ClusterTLS) (*tls.Config, error) {
	if t.CertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("cluster.tls: %w", err)
	}
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("cluster.tls.ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("cluster.tls.ca_file: %s holds no PEM certificate", t.CAFile)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}, nil
}

// start subscribes and starts the node's background work on sig.
func (cp *clusterPart) start(sig *signaling.Server) error {
	if cp == nil {
		return nil
	}
	return cp.node.Start(context.Background(), sig)
}

// close runs after signaling has closed: the node tells the others its
// peers are gone and gives their names back, then NATS stops.
func (cp *clusterPart) close(ctx context.Context) error {
	if cp == nil {
		return nil
	}
	err := cp.node.Close(ctx)
	cp.shutdownNATS()
	return err
}

// signalingCluster is the signaling.Cluster of cp, nil on a single node
// (a nil *cluster.Node in the interface would not be nil).
func (cp *clusterPart) signalingCluster() signaling.Cluster {
	if cp == nil {
		return nil
	}
	return cp.node
}

// reload applies cluster.routes (SIGHUP); other cluster keys need a
// restart and are returned. A Daemon without a cluster needs a restart
// to get one.
func (cp *clusterPart) reload(cfg *config.Config) (needRestart []string, err error) {
	if cp == nil {
		if cfg.Cluster != nil {
			return []string{"cluster"}, nil
		}
		return nil, nil
	}
	if cfg.Cluster == nil {
		return []string{"cluster"}, nil
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	old := cp.cfg
	oc, nc := old.Cluster, cfg.Cluster
	if oc.Node != nc.Node {
		needRestart = append(needRestart, "cluster.node")
	}
	if oc.Listen != nc.Listen {
		needRestart = append(needRestart, "cluster.listen")
	}
	if oc.NATSURL != nc.NATSURL {
		needRestart = append(needRestart, "cluster.nats_url")
	}
	if oc.SecretFile != nc.SecretFile || old.Parsed.Cluster.Secret != cfg.Parsed.Cluster.Secret {
		needRestart = append(needRestart, "cluster.secret_file")
	}
	if oc.TLS != nc.TLS {
		needRestart = append(needRestart, "cluster.tls")
	}
	if cp.emb != nil && !slices.Equal(oc.Routes, nc.Routes) {
		if err := cp.emb.ReloadRoutes(cfg.Parsed.Cluster.Routes); err != nil {
			return needRestart, err
		}
		cp.log.Info("cluster routes reloaded", "routes", len(nc.Routes))
	}
	cp.cfg = cfg
	return needRestart, nil
}

// Close stops the node at once (New failed after it was made).
func (cp *clusterPart) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return cp.close(ctx)
}

// clusterRelay is this node's TURN relayed address (the advertised
// public IP) and relay ports, as the other nodes' peer filters must allow
// them.
func clusterRelay(adv *advertise.Advertised, p *config.Parsed) relayrange.RelayRange {
	return relayrange.RelayRange{Addr: adv.PublicIP, Min: p.RelayMin, Max: p.RelayMax}
}

// healthy is nil when the node is connected to NATS and admits joins.
func (cp *clusterPart) healthy() error {
	switch {
	case cp == nil:
		return nil
	case !cp.node.Connected():
		return errors.New("cluster: not connected to NATS")
	case !cp.node.Ready():
		return errors.New("cluster: not ready (waiting for the other nodes or JetStream)")
	}
	return nil
}

// statusView is GET /cluster: the node's view of the cluster, the number
// of rooms and peers it knows of and, only when asked (?rooms=1), every
// room's peers by node: room and peer names are the users', and the
// metrics listener may be reachable by more people than the rooms are.
type statusView struct {
	cluster.Status
	RoomCount int                           `json:"room_count"`
	PeerCount int                           `json:"peer_count"`
	Rooms     map[string][]signaling.Member `json:"rooms,omitempty"`
}

// handler wraps the metrics listener's handler: /healthz also reports the
// cluster, and GET /cluster answers the status (icebox cluster status):
// counts of rooms and peers, and their names only with ?rooms=1.
func (cp *clusterPart) handler(next http.Handler, sig *signaling.Server) http.Handler {
	if cp == nil {
		return next
	}
	mux := http.NewServeMux()
	mux.Handle("/", next)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := cp.healthy(); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		// The TURN check of the plain handler, then the cluster line.
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 || rec.status == http.StatusOK {
			fmt.Fprintf(w, "cluster: node %s, %d nodes alive, NATS connected\n", cp.node.Name(), cp.node.AliveNodes())
		}
	})
	mux.HandleFunc("GET /cluster", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		v := statusView{Status: cp.node.Status(ctx)}
		rooms := map[string][]signaling.Member{}
		for _, m := range sig.Members() {
			if m.Node == "" {
				m.Node = cp.node.ID()
			}
			rooms[m.Room] = append(rooms[m.Room], m)
			v.PeerCount++
		}
		v.RoomCount = len(rooms)
		if r.URL.Query().Get("rooms") == "1" {
			v.Rooms = rooms
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
	})
	return mux
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// collectors are the cluster's metrics, none on a single node.
func (cp *clusterPart) collectors() []prometheus.Collector {
	if cp == nil {
		return nil
	}
	return []prometheus.Collector{cp.latency, &clusterCollector{cp: cp}}
}

var (
	descClusterNodes = desc("cluster_nodes", "Cluster nodes alive as this node sees them, itself included.")
	descClusterConn  = desc("cluster_nats_connected", "1 when the node's NATS connection is up, else 0.")
	descClusterReady = desc("cluster_ready", "1 when the node admits joins (JetStream answers, rooms loaded), else 0.")
	descClusterOut   = desc("cluster_messages_sent_total", "Messages sent to other nodes, by type (joined, left, moved, signal, heartbeat, resume).", "type")
	descClusterIn    = desc("cluster_messages_received_total", "Messages received from other nodes, by type (joined, left, moved, signal, heartbeat, resume; invalid when unreadable; rejected when not authenticated as the node it names, or a departure of a peer another node holds).", "type")
	descClusterErrs  = desc("cluster_publish_errors_total", "Messages NATS refused to send (connection down).")
	descClusterCAS   = desc("cluster_admission_conflicts_total", "Compare-and-set retries of room records: another node changed the room at the same time.")
	descClusterLost  = desc("cluster_signals_undelivered_total", "Signals from other nodes for a peer no longer here.")
	descClusterQueue = desc("cluster_queue_bytes", "Bytes held in the node's cluster queues, by direction (out: to other nodes, at most 4 MiB; in: from them, at most 4 MiB).", "direction")
	descClusterDrop  = desc("cluster_queue_dropped_total", "Messages dropped with a cluster queue full, by direction (out, in) and type (signal first; a dropped room event is recovered by a members sync; in/handoff: nats.go's hand-off channel overflowed).", "direction", "type")
)

// clusterCollector reads the node's counters at scrape time.
type clusterCollector struct{ cp *clusterPart }

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descClusterNodes, descClusterConn, descClusterReady, descClusterOut, descClusterIn,
		descClusterErrs, descClusterCAS, descClusterLost, descClusterQueue, descClusterDrop} {
		ch <- d
	}
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.cp.node
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	ch <- prometheus.MustNewConstMetric(descClusterNodes, prometheus.GaugeValue, float64(n.AliveNodes()))
	ch <- prometheus.MustNewConstMetric(descClusterConn, prometheus.GaugeValue, b(n.Connected()))
	ch <- prometheus.MustNewConstMetric(descClusterReady, prometheus.GaugeValue, b(n.Ready()))
	st := n.Stats()
	for k, v := range st.Sent() {
		ch <- prometheus.MustNewConstMetric(descClusterOut, prometheus.CounterValue, float64(v), k)
	}
	for k, v := range st.Received() {
		ch <- prometheus.MustNewConstMetric(descClusterIn, prometheus.CounterValue, float64(v), k)
	}
	ch <- prometheus.MustNewConstMetric(descClusterErrs, prometheus.CounterValue, float64(st.PublishErrors()))
	ch <- prometheus.MustNewConstMetric(descClusterCAS, prometheus.CounterValue, float64(st.Conflicts()))
	ch <- prometheus.MustNewConstMetric(descClusterLost, prometheus.CounterValue, float64(st.Undelivered()))
	q := n.QueueBytes()
	ch <- prometheus.MustNewConstMetric(descClusterQueue, prometheus.GaugeValue, float64(q.Out), "out")
	ch <- prometheus.MustNewConstMetric(descClusterQueue, prometheus.GaugeValue, float64(q.In), "in")
	for k, v := range st.DroppedOut() {
		ch <- prometheus.MustNewConstMetric(descClusterDrop, prometheus.CounterValue, float64(v), "out", k)
	}
	for k, v := range st.DroppedIn() {
		ch <- prometheus.MustNewConstMetric(descClusterDrop, prometheus.CounterValue, float64(v), "in", k)
	}
}

// routeAddr is the embedded NATS route listener's bound address, nil
// without one.
func (cp *clusterPart) routeAddr() net.Addr {
	if cp == nil || cp.emb == nil {
		return nil
	}
	return cp.emb.RouteAddr()
}

// natsStoreDir is where the embedded NATS keeps JetStream's meta data.
func natsStoreDir(cfg *config.Config) string { return filepath.Join(cfg.StateDir, "nats") }

// ClusterAddr is the bound route listener of the embedded NATS, nil on a
// single node or with cluster.nats_url.
func (d *Daemon) ClusterAddr() net.Addr { return d.cluster.routeAddr() }

// ClusterNode is this node of the cluster, nil on a single node.
func (d *Daemon) ClusterNode() *cluster.Node {
	if d.cluster == nil {
		return nil
	}
	return d.cluster.node
}
