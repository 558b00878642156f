package daemon

import (
	"net/http"
	"time"
)

// Deadlines of one request on the web server (withRequestDeadlines).
const (
	// requestBodyTimeout bounds the arrival of a request's body, from the
	// end of its head, like http.listen's ReadHeaderTimeout bounds the
	// head: no handler takes a body.
	requestBodyTimeout = 10 * time.Second
	// responseWriteTimeout bounds writing a response, from the end of the
	// request's head: the page and its largest asset are a few KB.
	responseWriteTimeout = 30 * time.Second
)

// withRequestDeadlines sets each request's read deadline, when it has a
// body, to body from now, and its write deadline to write from now.
//
// net/http reads the rest of a body a handler left unread (up to 256 KB)
// before it answers, and writes answers, with no deadline of its own once
// the head is read (http.Server's ReadTimeout and WriteTimeout would set
// them, but also on hijacked WebSockets, which signaling deadlines
// itself). So a client that sent "Content-Length: 10" and no body, or
// never read what it had asked for, held its connection for ever. A
// request without a body (a WebSocket upgrade among them) gets no read
// deadline; signaling sets its own write deadline before each write, so
// the one set here only bounds the upgrade's answer.
func withRequestDeadlines(h http.Handler, body, write time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if r.ContentLength != 0 {
			_ = rc.SetReadDeadline(time.Now().Add(body))
		}
		_ = rc.SetWriteDeadline(time.Now().Add(write))
		h.ServeHTTP(w, r)
	})
}
