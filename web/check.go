package web

import (
	_ "embed"
	"net/http"

	"github.com/icebox-project/icebox/internal/mintlimit"
	"github.com/icebox-project/icebox/internal/rtc"
)

//go:embed check.html
var checkHTML string

var checkTmpl = parsePage("check", checkHTML)

// check serves the connectivity check page, GET /check: from the user's
// browser it tries each ICE server URL on its own (static/checkice.js).
// Its RTCConfiguration is the one the call page of a new room would
// carry, minted per load under the same limit: with turn.credentials
// on-join (or a default room password) STUN URLs only, and the page
// takes the credential of welcome by joining a fresh room over /ws.
func (h *handler) check(w http.ResponseWriter, r *http.Request) {
	var cfg RTCConfiguration
	if h.cfg.PageCredentials == nil || h.cfg.PageCredentials(NewRoomID()) {
		if !h.takeCredential(w, r, mintlimit.SourcePage) {
			return
		}
		cfg = h.rtcConfig(false, "page:"+newUserID())
	} else {
		cfg = RTCConfiguration{ICEServers: []rtc.ICEServer{}, ICETransportPolicy: policy(false)}
		if h.cfg.STUNServers != nil {
			cfg.ICEServers = h.cfg.STUNServers()
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store") // credentials are per load.
	if err := checkTmpl.Execute(w, struct {
		Brand     brandView
		ICEConfig RTCConfiguration
	}{h.brandView(), cfg}); err != nil {
		h.cfg.Logger.Warn("rendering the check page", "error", err)
	}
}
