package daemon

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"

	"github.com/icebox-project/icebox/turnsrv"
)

// tlsStateKey is the context key of a connection's TLS state that
// net/http cannot see (turnsrv.TLSConnectionState).
type tlsStateKey struct{}

// tlsStateContext is http.Server.ConnContext: it keeps the TLS state of a
// connection from the listener shared with TURN whose first bytes were
// read to tell it apart (a client that offered no ALPN).
func tlsStateContext(ctx context.Context, c net.Conn) context.Context {
	if st := turnsrv.TLSConnectionState(c); st != nil {
		return context.WithValue(ctx, tlsStateKey{}, st)
	}
	return ctx
}

// withTLSState sets such a request's TLS, so that handlers see HTTPS as
// HTTPS (Strict-Transport-Security, secure origins).
func withTLSState(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			if st, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok {
				r2 := *r
				r2.TLS = st
				r = &r2
			}
		}
		h.ServeHTTP(w, r)
	})
}
