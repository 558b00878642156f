package cluster

import (
	"crypto/tls"
	"fmt"
	"log/slog"
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
	nc, err := nats.Connect("", opts...)
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
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster.nats_url: %w", err)
	}
	return nc, nil
}
