package daemon

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// The profiles are served only with ICEBOX_DEBUG_PPROF=1: unset or any
// other value, the metrics listener answers them as unknown paths.
func TestDebugPprofOnlyWhenAsked(t *testing.T) {
	next := http.NotFoundHandler()
	for _, tc := range []struct {
		env  string
		want int
	}{{"", http.StatusNotFound}, {"0", http.StatusNotFound}, {"true", http.StatusNotFound}, {"1", http.StatusOK}} {
		t.Setenv(debugEnv, tc.env)
		h := debugHandler(next, nil)
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			if rec.Code != tc.want {
				t.Errorf("%s=%q: GET %s = %d, want %d", debugEnv, tc.env, path, rec.Code, tc.want)
			}
		}
		// Without an embedded NATS there is no nats-server to describe.
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/nats/varz", nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("%s=%q: GET /debug/nats/varz without a cluster = %d, want 404", debugEnv, tc.env, rec.Code)
		}
	}
}
