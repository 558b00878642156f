package publicip

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Attacks on public_ip: metadata from whoever answers at the metadata
// address: each test fails if what it sends is taken.

// TestMetadataSlowBody: a service that sends headers and then its body
// slower than anyone waits, or never finishes it, does not hold start-up:
// Resolve falls back when its timeout ends, whatever the body does.
func TestMetadataSlowBody(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var started atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Metadata-Flavor", "Google")
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("203.0."))
		w.(http.Flusher).Flush()
		started.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	done := make(chan Result, 1)
	go func() { done <- Resolve(context.Background(), true, srv.URL, []string{"127.0.0.1:3478"}, ifaces()) }()
	select {
	case r := <-done:
		if r.Source != SourceListener || !errors.Is(r.MetadataErr, ErrNoAnswer) {
			t.Errorf("got %+v, want the listener address and ErrNoAnswer", r)
		}
	case <-time.After(10 * time.Second): // a failure guard only
		t.Fatal("Resolve still waiting on a body that never ends")
	}
	if started.Load() == 0 {
		t.Error("the slow body was never started")
	}
}

// TestMetadataNoRedirects: a redirect, even to a service that would give
// a public address, is not followed: that service is never asked.
func TestMetadataNoRedirects(t *testing.T) {
	t.Parallel()
	var asked atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		asked.Add(1)
		w.Header().Set("Metadata-Flavor", "Google")
		w.Write([]byte("8.8.4.4"))
	}))
	defer elsewhere.Close()
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+r.URL.RequestURI(), code)
		}))
		_, provider, err := Metadata(context.Background(), srv.URL)
		srv.Close()
		if !errors.Is(err, ErrNoAnswer) || !strings.Contains(err.Error(), "status 3") {
			t.Errorf("redirect %d: provider %q, err %v; want ErrNoAnswer with the status", code, provider, err)
		}
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the redirect target was asked %d times", n)
	}
}

// TestMetadataClientIgnoresEnvironment: the metadata client takes no
// proxy from the environment (HTTP_PROXY would send the request, and
// AWS's token, to the proxy) and follows no redirect. Go's
// ProxyFromEnvironment never proxies loopback, which is all a test may
// reach, so this looks at the client itself.
func TestMetadataClientIgnoresEnvironment(t *testing.T) {
	c := metadataClient()
	tr, ok := c.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("transport %T, want *http.Transport", c.Transport)
	}
	if tr.Proxy != nil {
		t.Error("the metadata client has a proxy function")
	}
	if c.CheckRedirect == nil || c.CheckRedirect(nil, nil) != http.ErrUseLastResponse {
		t.Error("the metadata client would follow redirects")
	}
}
