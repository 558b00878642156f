package sfu

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// gatherWait bounds how long the SFU waits for its own ICE candidates
// before it sends an SDP: they are host candidates on its media sockets,
// gathered without any network round trip.
const gatherWait = 2 * time.Second

// Events is what the SFU tells one participant. Each func may be nil and
// may be called from any goroutine, concurrently.
type Events struct {
	// Signal carries a signal from the peer "sfu", a JSON object: the
	// answer to the client's offer, {"sdp":{"type":"answer","sdp":"…"}},
	// holding all the SFU's ICE candidates; or {"renegotiate":{"audio":
	// a,"video":v}}, asking for an offer with a and v recvonly media
	// sections more.
	Signal func(data []byte)
	// Tracks lists every track the participant receives, after each
	// change.
	Tracks func([]TrackInfo)
	// Speaker names the room's new active speaker (a peer id).
	Speaker func(peer string)
	// Error reports a problem with what the participant sends that is not
	// the answer to one of its calls (over the publish bitrate, a track
	// refused).
	Error func(error)
}

// Participant is one member of a Room with its peer connection to the
// SFU.
type Participant struct {
	id   string
	room *Room
	ev   Events
	pc   *webrtc.PeerConnection
	bwe  cc.BandwidthEstimator
	// probe meters the probe packets that let bwe grow while the
	// participant gets less than it asked for (probe_bwe.go).
	probe prober

	negMu sync.Mutex // one SDP exchange step at a time
	asked [2]int     // recvonly audio, video sections asked for since the last answer
	// changed says a section with a mid changed direction since the last
	// answer: a track left it, or a new one took it (spare); reoffer says
	// an offer was asked for since. Both under negMu.
	changed, reoffer bool
	// spare holds the transceivers whose down-track left, each with the
	// number of answers sent by then (answers). Once a later answer has
	// shown the client the section inactive, pion's AddTrack may put a
	// new down-track of its kind there: a subscriber's sections stay as
	// many as the tracks it receives at once, not every track it ever
	// received. Under negMu.
	spare   map[*webrtc.RTPTransceiver]int64
	pending []webrtc.ICECandidateInit
	sources map[string]Source // mid → what the client says it sends

	// answers counts the SFU's answers, applied the ones the client said
	// it applied ({"applied":true}): a down-track whose section came in
	// an applied answer need not wait out StartDelay.
	answers, applied atomic.Int64

	mu        sync.Mutex
	published map[Source]*publishedTrack
	receivers map[Source]*webrtc.RTPReceiver
	downs     map[string]*DownTrack
	senders   map[*DownTrack]*webrtc.RTPSender
	capWarned bool
	closed    bool
}

func newParticipant(r *Room, id string, ev Events) (*Participant, error) {
	p := &Participant{id: id, room: r, ev: ev,
		sources:   map[string]Source{},
		published: map[Source]*publishedTrack{},
		receivers: map[Source]*webrtc.RTPReceiver{},
		downs:     map[string]*DownTrack{},
		senders:   map[*DownTrack]*webrtc.RTPSender{},
		spare:     map[*webrtc.RTPTransceiver]int64{},
	}
	api, err := r.sfu.newAPI(func(e cc.BandwidthEstimator) { p.bwe = e })
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("sfu: peer connection: %w", err)
	}
	p.pc = pc
	pc.OnTrack(p.onTrack)
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		r.sfu.cfg.Logger.Debug("sfu peer connection", "room", r.name, "peer", id, "state", s.String())
	})
	return p, nil
}

// ID is the participant's signaling peer id.
func (p *Participant) ID() string { return p.id }

// signal is what a client sends to the peer "sfu".
type signal struct {
	SDP       *webrtc.SessionDescription `json:"sdp"`
	Candidate *webrtc.ICECandidateInit   `json:"candidate"`
	// Sources says, by media section id (mid), what the client sends
	// there: "camera" (the default for video), "screen" or "microphone".
	Sources map[string]Source `json:"sources"`
	// Applied says the client applied the SFU's last answer: the media
	// sections it opened may carry media at once (StartDelay otherwise).
	Applied bool `json:"applied"`
}

// HandleSignal takes the data of a signal the client sent to "sfu":
// {"sdp":{"type":"offer"|"answer","sdp":…}, "sources":{mid: source}} or
// {"candidate":RTCIceCandidateInit}, or {"applied":true} once the client
// applied the SFU's last answer. An offer is answered through
// Events.Signal. Errors wrap ErrBadSignal or ErrTooLarge and say why; the
// participant's call goes on.
func (p *Participant) HandleSignal(data []byte) error {
	lim := p.room.sfu.cfg.Limits
	if len(data) > lim.SDPSize+4096 {
		return fmt.Errorf("%w: signal of %d bytes, at most %d", ErrTooLarge, len(data), lim.SDPSize+4096)
	}
	var s signal
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignal, err)
	}
	switch {
	case s.SDP != nil && s.Candidate != nil:
		return fmt.Errorf("%w: both sdp and candidate", ErrBadSignal)
	case s.SDP != nil:
		if err := p.checkSources(s.Sources); err != nil {
			return err
		}
		return p.handleSDP(*s.SDP, s.Sources)
	case s.Candidate != nil:
		return p.handleCandidate(*s.Candidate)
	case s.Applied:
		// The client offers again only once it applied an answer: this
		// is the latest one sent.
		p.applied.Store(p.answers.Load())
		return nil
	}
	return fmt.Errorf("%w: neither sdp nor candidate", ErrBadSignal)
}

func (p *Participant) checkSources(src map[string]Source) error {
	if len(src) > 3 {
		return fmt.Errorf("%w: %d sources, a participant sends at most 3 tracks", ErrBadSignal, len(src))
	}
	for mid, s := range src {
		if len(mid) == 0 || len(mid) > 32 {
			return fmt.Errorf("%w: source mid %q is not 1-32 characters", ErrBadSignal, mid)
		}
		if s != SourceCamera && s != SourceScreen && s != SourceMicrophone {
			return fmt.Errorf("%w: source %q of mid %q is not camera, screen or microphone", ErrBadSignal, s, mid)
		}
	}
	return nil
}

// checkSDP applies the size caps and checks that desc parses.
func (p *Participant) checkSDP(desc webrtc.SessionDescription) (*sdp.SessionDescription, error) {
	lim := p.room.sfu.cfg.Limits
	if len(desc.SDP) > lim.SDPSize {
		return nil, fmt.Errorf("%w: SDP of %d bytes, at most %d", ErrTooLarge, len(desc.SDP), lim.SDPSize)
	}
	var parsed sdp.SessionDescription
	if err := parsed.UnmarshalString(desc.SDP); err != nil {
		return nil, fmt.Errorf("%w: SDP: %v", ErrBadSignal, err)
	}
	if n := len(parsed.MediaDescriptions); n > lim.MediaSections {
		return nil, fmt.Errorf("%w: SDP with %d media sections, at most %d", ErrTooLarge, n, lim.MediaSections)
	}
	return &parsed, nil
}

// maxPublished is how many media sections a participant may send on: a
// camera, a screen share and a microphone.
const maxPublished = 3

// receiveSlots adds a recvonly transceiver for each media section the
// offer newly sends on, so pion pairs it with that section (JSEP §5.10
// prefers recvonly for a remote sendonly or sendrecv section) rather
// than with a down-track still waiting for a section of its own.
func (p *Participant) receiveSlots(offer *sdp.SessionDescription) error {
	known := map[string]bool{}
	sending := map[string]bool{} // mids of the SFU's down-tracks
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Mid() != "" {
			known[tr.Mid()] = true
			sending[tr.Mid()] = tr.Direction() == webrtc.RTPTransceiverDirectionSendonly
		}
	}
	// The sections the client sends on now, not every one it ever sent
	// on: a share that stopped (its section inactive) and a new one on a
	// section of its own make one track, not two.
	publishing := 0
	for _, md := range offer.MediaDescriptions {
		mid, _ := md.Attribute("mid")
		_, sendonly := md.Attribute("sendonly")
		_, sendrecv := md.Attribute("sendrecv")
		if sending[mid] && (sendonly || sendrecv) {
			// addTrack reuses a recvonly transceiver: the track would go
			// out on a section the SFU only sends on, and nowhere.
			return fmt.Errorf("%w: media section %q carries a track of the SFU's and cannot carry yours: publish with addTransceiver(track, {direction: \"sendonly\"}), not addTrack", ErrBadSignal, mid)
		}
		kind := webrtc.NewRTPCodecType(md.MediaName.Media)
		if !(sendonly || sendrecv) || kind == 0 { // kind 0: application (data channel)
			continue
		}
		if publishing++; publishing > maxPublished {
			return fmt.Errorf("%w: more than %d media sections to publish on", ErrPublishLimit, maxPublished)
		}
		if known[mid] {
			continue
		}
		if _, err := p.pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return fmt.Errorf("sfu: receive %s: %w", kind, err)
		}
	}
	return nil
}

func (p *Participant) handleSDP(desc webrtc.SessionDescription, sources map[string]Source) error {
	if desc.Type != webrtc.SDPTypeOffer {
		return fmt.Errorf("%w: sdp type %q: the SFU only answers offers", ErrBadSignal, desc.Type)
	}
	parsed, err := p.checkSDP(desc)
	if err != nil {
		return err
	}
	p.negMu.Lock()
	if p.isClosed() {
		p.negMu.Unlock()
		return ErrClosed
	}
	err = p.receiveSlots(parsed)
	if err == nil {
		err = p.answer(desc, sources)
	}
	p.negMu.Unlock()
	if err == nil {
		p.negotiate()
	}
	return err
}

// answer applies the client's offer and sends the SFU's answer. Down-
// tracks waiting for a media section take the offer's recvonly sections
// of their kind, in order (JSEP §5.10). Called with negMu held.
func (p *Participant) answer(offer webrtc.SessionDescription, sources map[string]Source) error {
	p.mu.Lock()
	for mid, s := range sources {
		p.sources[mid] = s
	}
	p.mu.Unlock()
	if err := p.pc.SetRemoteDescription(offer); err != nil {
		return fmt.Errorf("%w: offer: %v", ErrBadSignal, err)
	}
	p.addPending()
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("%w: answer to the offer: %v", ErrBadSignal, err)
	}
	p.asked = [2]int{}
	p.changed, p.reoffer = false, false
	p.answers.Add(1) // before: pion may bind down-tracks within SetLocalDescription
	return p.setLocalAndSend(answer)
}

// setLocalAndSend applies desc and sends it with the SFU's candidates.
func (p *Participant) setLocalAndSend(desc webrtc.SessionDescription) error {
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(desc); err != nil {
		return fmt.Errorf("sfu: local description: %w", err)
	}
	select {
	case <-gathered:
	case <-time.After(gatherWait):
	}
	local := p.pc.LocalDescription()
	if local == nil {
		return fmt.Errorf("sfu: no local description")
	}
	b, err := json.Marshal(map[string]any{"sdp": local})
	if err != nil {
		return err
	}
	if p.ev.Signal != nil {
		p.ev.Signal(b)
	}
	return nil
}

// addPending adds the candidates that came before a remote description.
func (p *Participant) addPending() {
	for _, c := range p.pending {
		_ = p.pc.AddICECandidate(c)
	}
	p.pending = nil
}

func (p *Participant) handleCandidate(c webrtc.ICECandidateInit) error {
	lim := p.room.sfu.cfg.Limits
	if len(c.Candidate) > lim.CandidateSize {
		return fmt.Errorf("%w: candidate of %d bytes, at most %d", ErrTooLarge, len(c.Candidate), lim.CandidateSize)
	}
	if c.Candidate == "" {
		return nil // end of candidates
	}
	p.negMu.Lock()
	defer p.negMu.Unlock()
	if p.pc.RemoteDescription() == nil {
		if len(p.pending) >= lim.PendingCandidates {
			return fmt.Errorf("%w: %d candidates before an offer", ErrTooLarge, len(p.pending))
		}
		p.pending = append(p.pending, c)
		return nil
	}
	if err := p.pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("%w: candidate: %v", ErrBadSignal, err)
	}
	return nil
}

// negotiate asks the client for an offer with room for the down-tracks
// that have no media section yet: {"renegotiate":{"audio":a,"video":v}}
// asks for a recvonly audio and v recvonly video sections more; a and v
// may both be 0 when a section a track left or a new one took needs the
// client's offer to change direction. The
// client is the only offerer, so offers never cross (pion cannot roll
// back a local offer, and no client has to).
func (p *Participant) negotiate() {
	p.negMu.Lock()
	defer p.negMu.Unlock()
	if p.isClosed() {
		return
	}
	var want struct {
		Audio int `json:"audio"`
		Video int `json:"video"`
	}
	p.mu.Lock()
	for d, s := range p.senders {
		for _, tr := range p.pc.GetTransceivers() {
			if tr.Sender() == s && tr.Mid() == "" {
				if d.pub.kind == webrtc.RTPCodecTypeAudio {
					want.Audio++
				} else {
					want.Video++
				}
			}
		}
	}
	p.mu.Unlock()
	// Ask only for what was not asked for since the last answer: a
	// request still on its way is not repeated.
	want.Audio, p.asked[0] = max(want.Audio-p.asked[0], 0), max(want.Audio, p.asked[0])
	want.Video, p.asked[1] = max(want.Video-p.asked[1], 0), max(want.Video, p.asked[1])
	// A section that changed direction needs an offer, even with no new
	// section to ask for: {"renegotiate":{"audio":0,"video":0}}.
	again := p.changed && !p.reoffer
	if (want.Audio+want.Video == 0 && !again) || p.ev.Signal == nil {
		return
	}
	p.reoffer = p.reoffer || p.changed
	b, err := json.Marshal(map[string]any{"renegotiate": want})
	if err == nil {
		p.ev.Signal(b)
	}
}

func (p *Participant) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// onTrack takes a track (or one simulcast layer of one) the participant
// publishes.
func (p *Participant) onTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	idx, ok := layerIndex(remote.RID())
	if !ok {
		p.reject(fmt.Errorf("%w: simulcast layer %q is not q, h or f", ErrPublishLimit, remote.RID()))
		return
	}
	source := p.sourceOf(receiver, remote.Kind())
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	t := p.published[source]
	if t != nil && p.receivers[source] != receiver {
		old := p.receivers[source]
		p.mu.Unlock()
		if p.receiving(old) {
			p.reject(fmt.Errorf("%w: a second %s track", ErrPublishLimit, source))
			return
		}
		// The section's receiver was replaced (the client sent a new
		// track on it after it stopped): the old track ends now, if its
		// layers have not yet noticed.
		p.unpublish(t)
		p.mu.Lock()
		t = p.published[source]
		if t != nil {
			p.mu.Unlock()
			p.reject(fmt.Errorf("%w: a second %s track", ErrPublishLimit, source))
			return
		}
	}
	fresh := t == nil
	if fresh {
		p.mu.Unlock()
		if err := p.room.admitPublisher(p); err != nil {
			p.reject(err)
			return
		}
		var levelID uint8
		for _, e := range receiver.GetParameters().HeaderExtensions {
			if e.URI == sdp.AudioLevelURI {
				levelID = uint8(e.ID)
			}
		}
		made := newPublishedTrack(p, remote, source, levelID)
		p.mu.Lock()
		// pion calls OnTrack for each simulcast layer on its own
		// goroutine: another layer of this track may have made it
		// meanwhile, and its layers must not be lost with a second one.
		if t = p.published[source]; t == nil {
			t = made
			p.published[source] = t
			p.receivers[source] = receiver
		} else {
			fresh = false
			if p.receivers[source] != receiver {
				p.mu.Unlock()
				p.reject(fmt.Errorf("%w: a second %s track", ErrPublishLimit, source))
				return
			}
		}
	}
	p.mu.Unlock()
	l, ok := t.addLayer(idx, remote)
	if !ok {
		return
	}
	go t.run(idx, l)
	go drainRTCP(receiver, remote.RID())
	if fresh {
		p.room.publish(t)
	} else {
		p.room.tracksChanged(p.id)
	}
}

// receiving reports whether r is still the receiver of one of the peer
// connection's transceivers (pion replaces a section's receiver when a
// new remote description stops the track it carried).
func (p *Participant) receiving(r *webrtc.RTPReceiver) bool {
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Receiver() == r {
			return true
		}
	}
	return false
}

// unpublish takes t out of the room: the client stopped sending it (a
// screen share ended: its section went inactive) or sends a new track
// in its place. Every subscriber loses its down-track and hears the new
// track list; the client may publish that source again.
func (p *Participant) unpublish(t *publishedTrack) {
	p.mu.Lock()
	if p.published[t.source] == t {
		delete(p.published, t.source)
		delete(p.receivers, t.source)
	}
	closed := p.closed
	p.mu.Unlock()
	if !closed {
		p.room.unpublish(t)
	}
}

func drainRTCP(r *webrtc.RTPReceiver, rid string) {
	for {
		var err error
		if rid != "" {
			_, _, err = r.ReadSimulcastRTCP(rid)
		} else {
			_, _, err = r.ReadRTCP()
		}
		if err != nil {
			return
		}
	}
}

// sourceOf is what the client declared for receiver's mid, kept to what
// the track's kind allows.
func (p *Participant) sourceOf(receiver *webrtc.RTPReceiver, kind webrtc.RTPCodecType) Source {
	if kind == webrtc.RTPCodecTypeAudio {
		return SourceMicrophone
	}
	var mid string
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Receiver() == receiver {
			mid = tr.Mid()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sources[mid] == SourceScreen {
		return SourceScreen
	}
	return SourceCamera
}

func (p *Participant) reject(err error) {
	p.room.sfu.cfg.Logger.Info("sfu track refused", "room", p.room.name, "peer", p.id, "err", err)
	if p.ev.Error != nil {
		p.ev.Error(err)
	}
}

// subscribe adds a down-track of t; the caller negotiates. The down-track
// takes a spare section of its kind if the client has seen one go
// inactive, else a new sendonly transceiver that waits for a section.
func (p *Participant) subscribe(t *publishedTrack) {
	d := newDownTrack(t, p)
	p.negMu.Lock()
	defer p.negMu.Unlock()
	p.mu.Lock()
	if p.closed || p.downs[t.id] != nil {
		p.mu.Unlock()
		return
	}
	sender, err := p.reuse(d)
	if sender == nil && err == nil {
		var tr *webrtc.RTPTransceiver
		tr, err = p.pc.AddTransceiverFromTrack(d, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err == nil {
			sender = tr.Sender()
		}
	}
	if err != nil {
		p.mu.Unlock()
		p.room.sfu.cfg.Logger.Warn("sfu subscribe failed", "room", p.room.name, "peer", p.id, "track", t.id, "err", err)
		return
	}
	p.downs[t.id] = d
	p.senders[d] = sender
	p.mu.Unlock()
	t.addDown(d)
	go p.readSenderRTCP(d, sender)
}

// reuse puts d on a spare transceiver of its kind whose section an
// answer since it was freed has made inactive; nil if there is none.
// pion's AddTrack picks the transceiver (one of those, or a section the
// client offered beyond what was asked), and makes it sendonly. Called
// with negMu and mu held.
func (p *Participant) reuse(d *DownTrack) (*webrtc.RTPSender, error) {
	answered := p.answers.Load()
	ready := false
	for tr, freed := range p.spare {
		if tr.Kind() == d.Kind() && tr.Sender() == nil && (tr.Mid() == "" || answered > freed) {
			ready = true
			break
		}
	}
	if !ready {
		return nil, nil
	}
	sender, err := p.pc.AddTrack(d)
	if err != nil {
		return nil, err
	}
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Sender() == sender {
			delete(p.spare, tr)
			if tr.Mid() != "" {
				p.changed = true
			}
		}
	}
	return sender, nil
}

// midOf is the mid of the media section d is sent on, nil until one is
// negotiated.
func (p *Participant) midOf(d *DownTrack) []byte {
	for _, tr := range p.pc.GetTransceivers() {
		if s := tr.Sender(); s != nil && s.Track() == d && tr.Mid() != "" {
			return []byte(tr.Mid())
		}
	}
	return nil
}

// readSenderRTCP reads the subscriber's RTCP about d: a PLI or FIR asks
// the publisher for a keyframe; NACKs are answered by the interceptor's
// packet cache and counted here.
func (p *Participant) readSenderRTCP(d *DownTrack, s *webrtc.RTPSender) {
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				d.keyframeWanted()
			case *rtcp.TransportLayerNack:
				p.room.sfu.stats.NACKs.Add(1)
			}
		}
	}
}

// unsubscribe removes the down-track of t; false if there was none. Its
// transceiver becomes a spare, and its section goes inactive in the next
// answer.
func (p *Participant) unsubscribe(t *publishedTrack) bool {
	p.negMu.Lock()
	defer p.negMu.Unlock()
	p.mu.Lock()
	d := p.downs[t.id]
	if d == nil {
		p.mu.Unlock()
		return false
	}
	sender := p.senders[d]
	delete(p.downs, t.id)
	delete(p.senders, d)
	closed := p.closed
	p.mu.Unlock()
	t.removeDown(d)
	if closed {
		return true
	}
	var tr *webrtc.RTPTransceiver
	for _, x := range p.pc.GetTransceivers() {
		if x.Sender() == sender {
			tr = x
		}
	}
	if err := p.pc.RemoveTrack(sender); err != nil || tr == nil {
		return true
	}
	p.spare[tr] = p.answers.Load()
	if tr.Mid() != "" {
		p.changed = true
	}
	return true
}

// sendTracks tells the participant what it receives.
func (p *Participant) sendTracks() {
	if p.ev.Tracks == nil {
		return
	}
	p.ev.Tracks(p.Tracks())
}

// Tracks lists the tracks the participant receives, by track id.
func (p *Participant) Tracks() []TrackInfo {
	p.mu.Lock()
	list := make([]TrackInfo, 0, len(p.downs))
	for _, d := range p.downs {
		list = append(list, d.pub.info())
	}
	p.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Track < list[j].Track })
	return list
}

// RequestLayer sets the largest layer ("q", "h", "f", or "none" to pause)
// the participant shows of track, by track id. Errors: ErrBadLayer,
// ErrUnknownTrack.
func (p *Participant) RequestLayer(track, layer string) error {
	l, err := ParseLayer(layer)
	if err != nil {
		return err
	}
	p.mu.Lock()
	d := p.downs[track]
	p.mu.Unlock()
	if d == nil {
		return fmt.Errorf("%w: %q", ErrUnknownTrack, track)
	}
	if d.pub.kind != webrtc.RTPCodecTypeVideo {
		return fmt.Errorf("%w: track %q is audio", ErrBadLayer, track)
	}
	d.setRequested(l)
	p.allocate()
	return nil
}

// Estimate is the participant's downlink bandwidth estimate, bit/s.
func (p *Participant) Estimate() int {
	if p.bwe == nil {
		return 0
	}
	return p.bwe.GetTargetBitrate()
}

// allocate chooses the layer of every video down-track from the
// bandwidth estimate, after audio.
func (p *Participant) allocate() {
	p.mu.Lock()
	downs := make([]*DownTrack, 0, len(p.downs))
	for _, d := range p.downs {
		downs = append(downs, d)
	}
	p.mu.Unlock()
	sort.Slice(downs, func(i, j int) bool { return downs[i].pub.id < downs[j].pub.id })
	estimate := float64(p.Estimate())
	if f := p.room.sfu.cfg.EstimateObserved; f != nil && estimate > 0 {
		f(estimate)
	}
	var audio float64
	var video []*DownTrack
	var tracks []allocTrack
	for _, d := range downs {
		rates, available := d.pub.layerRates()
		if d.pub.kind == webrtc.RTPCodecTypeAudio {
			audio += rates[0]
			continue
		}
		requested, target, _ := d.layers()
		video = append(video, d)
		tracks = append(tracks, allocTrack{screen: d.pub.source == SourceScreen,
			requested: requested, current: target, rates: rates, available: available})
	}
	media, need := audio, audio
	for i, l := range allocate(estimate-audio, tracks) {
		video[i].setTarget(l)
		t := tracks[i]
		if l != noLayer {
			media += t.rates[l]
		}
		for w := min(t.requested, len(t.available)-1); w >= 0; w-- {
			if t.available[w] {
				need += t.rates[w]
				break
			}
		}
	}
	rate := 0.0
	if need > media {
		loss, overusing := p.congestion()
		rate = probeRate(estimate, media, need, loss, overusing)
	}
	p.probe.setRate(rate, p.room.sfu.cfg.Now())
}

// congestion is what the participant's estimator last saw of its path:
// the average loss (a fraction) and whether the delay shows overuse (so
// too before it has seen any feedback).
func (p *Participant) congestion() (loss float64, overusing bool) {
	if p.bwe == nil {
		return 0, true
	}
	st := p.bwe.GetStats()
	loss, _ = st["averageLoss"].(float64)
	usage, _ := st["usage"].(string)
	return loss, usage != "normal" && usage != "underuse"
}

// enforcePublishCap keeps what the participant publishes, summed over
// forwarded layers, under Limits.PublishBitrate: over it, the top
// forwarded layer of a camera (or, with none left to drop, the largest
// track) stops being forwarded; well under it, one comes back.
func (p *Participant) enforcePublishCap() {
	limit := float64(p.room.sfu.cfg.Limits.PublishBitrate)
	p.mu.Lock()
	tracks := make([]*publishedTrack, 0, len(p.published))
	for _, t := range p.published {
		tracks = append(tracks, t)
	}
	p.mu.Unlock()
	sort.Slice(tracks, func(i, j int) bool { return tracks[i].id < tracks[j].id })
	total, all := 0.0, 0.0
	var drop, restore *publishedTrack
	var restoreRate float64
	for _, t := range tracks {
		t.mu.Lock()
		capped := int(t.capped.Load())
		top := 0
		for i, l := range t.layers {
			if l == nil {
				continue
			}
			top = i
			all += l.rate
			if i <= capped {
				total += l.rate
			}
		}
		if capped < top && restore == nil {
			restore = t
			if next := t.layers[capped+1]; next != nil {
				restoreRate = next.rate
			} else if capped < 0 && t.layers[0] != nil {
				restoreRate = t.layers[0].rate
			}
		}
		if t.source == SourceCamera && capped > 0 && (drop == nil || drop.source != SourceCamera) {
			drop = t
		}
		if drop == nil && capped >= 0 && t.kind == webrtc.RTPCodecTypeVideo {
			drop = t
		}
		t.mu.Unlock()
	}
	switch {
	case total > limit && drop != nil:
		next := drop.capped.Load() - 1
		if drop.source != SourceCamera {
			next = noLayer
		}
		drop.capped.Store(next)
		p.mu.Lock()
		warn := !p.capWarned
		p.capWarned = true
		p.mu.Unlock()
		if warn {
			p.reject(fmt.Errorf("%w: publishing %.0f kbit/s, over the cap of %.0f kbit/s: the top layers are not forwarded",
				ErrPublishLimit, all/1000, limit/1000))
		}
	case restore != nil && total+restoreRate < 0.8*limit:
		restore.capped.Add(1)
	}
}

// Close leaves the room and closes the peer connection.
func (p *Participant) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.room.leave(p)
	p.mu.Lock()
	downs := p.downs
	p.downs = map[string]*DownTrack{}
	p.mu.Unlock()
	for _, d := range downs {
		d.pub.removeDown(d)
	}
	err := p.pc.Close()
	if err != nil && !errors.Is(err, webrtc.ErrConnectionClosed) {
		return fmt.Errorf("sfu: close %s: %w", p.id, err)
	}
	return nil
}

// String names the participant in logs.
func (p *Participant) String() string { return strings.Join([]string{p.room.name, p.id}, "/") }
