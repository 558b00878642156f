package cluster

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// connOptions are every node connection's, password the NATS user
// "icebox"'s: no echo of its own messages
// (the node applies its own changes itself), reconnect for ever, and
// disconnects logged.
func connOptions(name, password string, log *slog.Logger) []nats.Option {
	return []nats.Option{
		nats.Name("icebox " + name),
		nats.UserInfo(natsUser, password),
		nats.NoEcho(),
		nats.Timeout(10 * time.Second),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if !nc.IsClosed() {
				log.Warn("cluster: NATS connection lost", "error", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("cluster: NATS", "error", err)
		}),
	}
}

// ConnectEmbedded opens the node's in-process connection to its embedded
// server.
func ConnectEmbedded(e *Embedded, name string, log *slog.Logger) (*nats.Conn, error) {
	opts := append(connOptions(name, clientPassword(e.secret), log), nats.InProcessServer(e.srv))
	nc, err := connect("", opts)
	if err != nil {
		return nil, fmt.Errorf("cluster: connect to the embedded NATS: %w", err)
	}
	return nc, nil
}

// Connect opens the node's connection to an operator's NATS at url,
// authenticating as user "icebox" with the cluster secret, over tlsCfg
// when set.
func Connect(url, name, secret string, tlsCfg *tls.Config, log *slog.Logger) (*nats.Conn, error) {
	opts := connOptions(name, secret, log)
	if tlsCfg != nil {
		opts = append(opts, nats.Secure(tlsCfg))
	}
	nc, err := connect(url, opts)
	if err != nil {
		return nil, fmt.Errorf("cluster.nats_url: %w", err)
	}
	return nc, nil
}

// connectAttempts bounds connect's tries.
const connectAttempts = 3

// connect is nats.Connect, tried again (up to connectAttempts times in
// all) when the handshake saw the server's PING before its PONG:
// nats-server pings a client that has not finished its handshake within
// 2 s, which a loaded machine can take, and nats.go then gives up on a
// connection that works. Any other error (refused, wrong password) is
// returned at once.
func connect(url string, opts []nats.Option) (*nats.Conn, error) {
	var err error
	for range connectAttempts {
		var nc *nats.Conn
		if nc, err = nats.Connect(url, opts...); err == nil {
			return nc, nil
		}
		if !strings.Contains(err.Error(), "got 'PING'") {
			return nil, err
		}
	}
	return nil, err
}
