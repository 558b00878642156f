package daemon

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"os"

	"github.com/nats-io/nats-server/v2/server"
)

// debugEnv names the environment variable that, set to "1", adds Go's
// profiles (/debug/pprof/) and, on a node running the embedded NATS,
// nats-server's own counters (/debug/nats/varz, /debug/nats/jsz) to the
// metrics listener. It is for measuring (bench/sigbench -pprof) and is
// off unless set; nothing in the configuration turns it on.
const debugEnv = "ICEBOX_DEBUG_PPROF"

// debugHandler wraps the metrics listener's handler with the debug
// endpoints when debugEnv is "1"; otherwise it returns next unchanged.
func debugHandler(next http.Handler, cp *clusterPart) http.Handler {
	if os.Getenv(debugEnv) != "1" {
		return next
	}
	mux := http.NewServeMux()
	mux.Handle("/", next)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	if cp != nil && cp.emb != nil {
		srv := cp.emb.Server()
		mux.HandleFunc("GET /debug/nats/varz", func(w http.ResponseWriter, _ *http.Request) {
			v, err := srv.Varz(nil)
			writeDebugJSON(w, v, err)
		})
		mux.HandleFunc("GET /debug/nats/jsz", func(w http.ResponseWriter, _ *http.Request) {
			v, err := srv.Jsz(&server.JSzOptions{Streams: true, RaftGroups: true})
			writeDebugJSON(w, v, err)
		})
	}
	return mux
}

func writeDebugJSON(w http.ResponseWriter, v any, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
