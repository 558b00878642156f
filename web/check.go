package web

import (
	"context"
	_ "embed"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

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
	var sfuPorts *sfuCheckPorts
	if c := h.cfg.SFUCheck; c != nil {
		sfuPorts = &sfuCheckPorts{UDP: c.UDPPort, TCP: c.TCPPort}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store") // credentials are per load.
	if err := checkTmpl.Execute(w, struct {
		Brand     brandView
		ICEConfig RTCConfiguration
		SFU       *sfuCheckPorts
	}{h.brandView(), cfg, sfuPorts}); err != nil {
		h.cfg.Logger.Warn("rendering the check page", "error", err)
	}
}

// SFUCheck is what /check needs to test the SFU's media sockets from the
// browser (POST /check/sfu).
type SFUCheck struct {
	// Probe answers the SDP offer of a peer connection with one data
	// channel from the SFU's media sockets and echoes the channel's
	// messages (sfu.SFU.Probe). Its errors wrap ErrProbeRefused (the
	// offer is wrong: 400) or ErrProbeBusy (503); any other is 500.
	Probe func(ctx context.Context, offer string) (answer string, err error)
	// UDPPort is the SFU's UDP media port; TCPPort the port of its ICE-TCP
	// candidates (the port HTTPS and TURN share), 0 without ICE-TCP. The
	// page names them.
	UDPPort, TCPPort int
}

// Errors of SFUCheck.Probe.
var (
	ErrProbeRefused = errors.New("web: probe offer refused")
	ErrProbeBusy    = errors.New("web: SFU busy")
)

// sfuCheckPorts is the page's <script id="sfu-check">: null without an
// SFU.
type sfuCheckPorts struct {
	UDP int `json:"udp"`
	TCP int `json:"tcp,omitempty"`
}

// maxProbeOffer bounds POST /check/sfu's body (sfu.ProbeSDPSize).
const maxProbeOffer = 16 << 10

// probeTimeout bounds the answer to a probe.
const probeTimeout = 5 * time.Second

// checkSFU answers POST /check/sfu: a body of Content-Type application/sdp,
// the offer of a peer connection with one data channel, at most 16 KiB,
// from a page of this origin (an Origin header naming another host is
// refused: 403). 201 with the answer (application/sdp). Each probe takes
// a token of the client's credential bucket (source "sfu-check"): 429
// past it. 404 without an SFU, 415 for another content type, 413 past
// the size, 400 for an offer that is not one data channel, 503 while the
// SFU has sfu.MaxProbes open.
func (h *handler) checkSFU(w http.ResponseWriter, r *http.Request) {
	c := h.cfg.SFUCheck
	if c == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if o := r.Header.Get("Origin"); o != "" {
		if u, err := url.Parse(o); err != nil || u.Host != r.Host {
			http.Error(w, "a probe must come from this server's own /check page", http.StatusForbidden)
			return
		}
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/sdp" {
		http.Error(w, "the body must be an SDP offer (Content-Type: application/sdp)", http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxProbeOffer))
	if err != nil {
		http.Error(w, "the offer is over 16 KiB", http.StatusRequestEntityTooLarge)
		return
	}
	if !h.take(w, r, mintlimit.SourceSFUCheck, "connectivity probes") {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	answer, err := c.Probe(ctx, string(body))
	switch {
	case errors.Is(err, ErrProbeRefused):
		// What is wrong with the offer, without the packages' prefixes.
		why := err.Error()
		if i := strings.LastIndex(why, ": "); i >= 0 {
			why = why[i+2:]
		}
		http.Error(w, "the media server refused the test's offer: "+why, http.StatusBadRequest)
		return
	case errors.Is(err, ErrProbeBusy):
		w.Header().Set("Retry-After", "5")
		http.Error(w, "the media server is testing too many browsers at once; try again in 5 s", http.StatusServiceUnavailable)
		return
	case err != nil:
		h.cfg.Logger.Warn("sfu probe", "error", err)
		http.Error(w, "the media server could not answer", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/sdp")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}
