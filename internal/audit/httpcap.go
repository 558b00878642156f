package audit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// CheckHTTPCap names the HTTP connection-cap check.
const CheckHTTPCap = "http-connection-cap"

// DefaultHTTPConnections is how many idle connections the HTTP cap check
// opens at most: icebox holds 64 from one address by default
// (turn.max_tcp_connections_per_ip), and 256 is little for any server to
// refuse, yet far above what one browser opens.
const DefaultHTTPConnections = 256

// httpCapHold is how long a connection of the HTTP cap check must stay
// open to count as held; a refused one is reset at once.
const httpCapHold = time.Second

// httpCapRecover bounds how long after the connections are closed a
// fresh request may still be refused: the server reads the FINs of up to
// HTTPConnections connections first.
const httpCapRecover = 3 * time.Second

// httpCap opens up to HTTPConnections idle connections from this host
// to the page's address (HTTP or HTTPS: the cap is on TCP connections,
// before TLS), sending nothing on them, and counts those the server
// still holds after httpCapHold. It passes when some were refused (the
// server caps connections per address) and, once they are all closed, a
// fresh request is still answered: a server that holds every one can be
// run out of descriptors by one client.
func httpCap(ctx context.Context, cfg Config) Result {
	switch {
	case cfg.NoIdleWait:
		return skip(CheckHTTPCap, "not run (it holds up to %d connections for %s)", cfg.HTTPConnections, httpCapHold)
	case cfg.HTTP == "":
		return skip(CheckHTTPCap, "no HTTP address to check (http.listen on port 0, or -http off)")
	}
	n := cfg.HTTPConnections
	var d net.Dialer
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dialErrs := 0
	for range n {
		c, err := d.DialContext(ctx, "tcp", cfg.HTTP)
		if err != nil {
			if ctx.Err() != nil {
				return fail(CheckHTTPCap, "interrupted: %v", ctx.Err())
			}
			dialErrs++ // refused before connect returned
			continue
		}
		conns = append(conns, c)
	}
	// Held or not: a refused connection's read ends at once (reset or
	// EOF), a held one's at the deadline.
	deadline := time.Now().Add(httpCapHold)
	held := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(deadline)
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				mu.Lock()
				held++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	if ctx.Err() != nil {
		return fail(CheckHTTPCap, "interrupted: %v", ctx.Err())
	}
	if held >= n {
		return fail(CheckHTTPCap, "all %d idle connections from one address to %s were held: no per-address cap", n, cfg.HTTP)
	}
	// The server counts the closed connections out when it reads their
	// FIN, which may be after the fresh request's connect: until then that
	// request is one over the address's cap. It is asked again for up to
	// httpCapRecover.
	closed := time.Now()
	status, err := freshRequest(ctx, cfg)
	retry := time.NewTicker(50 * time.Millisecond)
	defer retry.Stop()
	for err != nil && time.Since(closed) < httpCapRecover {
		select {
		case <-ctx.Done():
			return fail(CheckHTTPCap, "interrupted: %v", ctx.Err())
		case <-retry.C:
			status, err = freshRequest(ctx, cfg)
		}
	}
	if err != nil {
		return fail(CheckHTTPCap, "%d of %d idle connections to %s held (capped), but a fresh request within %s after closing them failed: %v", held, n, cfg.HTTP, httpCapRecover, err)
	}
	return pass(CheckHTTPCap, "%d of %d idle connections from one address to %s held, the rest refused (%d before connect returned); a fresh request afterwards: %d",
		held, n, cfg.HTTP, dialErrs, status)
}

// freshRequest sends GET /healthz to cfg.HTTP (over TLS when the address
// is one of the TLS targets, without verifying the certificate: the
// certificate has its own check) and returns the status. Any answer
// counts: the server is serving.
func freshRequest(ctx context.Context, cfg Config) (int, error) {
	scheme := "http"
	for _, t := range cfg.TLS {
		if t.Addr == cfg.HTTP {
			scheme = "https"
		}
	}
	if cfg.HTTPS {
		scheme = "https"
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // only whether it answers; tls-certificate checks the certificate.
	}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s/healthz", scheme, cfg.HTTP), nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
