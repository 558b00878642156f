package wire

// Message types and codes added for SFU rooms (docs/protocol.md, "SFU
// rooms"); nothing before them changes meaning.
const (
	TypeMedia   = "media"   // server → client: the room's media mode changed
	TypeTracks  = "tracks"  // server → client: which peer owns which stream
	TypeLayer   = "layer"   // client → server: the largest layer shown of a track
	TypeSpeaker = "speaker" // server → client: the active speaker

	// CodePublishLimit: a track or bitrate over the SFU's caps.
	CodePublishLimit = "publish-limit"
	// CodeUnknownTrack: a layer request for a track the peer does not
	// receive.
	CodeUnknownTrack = "unknown-track"
	// CodeSFUUnavailable: the SFU refused the peer (server full, closed).
	CodeSFUUnavailable = "sfu-unavailable"

	// SFUPeer is the SFU's reserved peer id; no peer can have it.
	SFUPeer = "sfu"
	// MediaMesh and MediaSFU are welcome's and media's "media".
	MediaMesh = "mesh"
	MediaSFU  = "sfu"
)

// Media (server → client): the room now uses Media (MediaMesh, MediaSFU).
// With Renew (and MediaSFU) the room stays on an SFU but the client's
// participant there is new (on a cluster, the node hosting the room's
// SFU is gone and another took over): the client closes its connection
// to "sfu" and offers on a new one.
type Media struct {
	Media string `json:"media"`
	Renew bool   `json:"renew,omitempty"`
}

// TrackInfo is one track a peer receives from the SFU.
type TrackInfo struct {
	Track  string   `json:"track"`            // track id (msid)
	Stream string   `json:"stream"`           // stream id (msid)
	Peer   string   `json:"peer"`             // publisher's peer id
	Kind   string   `json:"kind"`             // "audio" or "video"
	Source string   `json:"source"`           // camera, screen or microphone
	Layers []string `json:"layers,omitempty"` // simulcast layers sent, of q, h, f
}

// Tracks (server → client): every track the peer receives, after each
// change.
type Tracks struct {
	Tracks []TrackInfo `json:"tracks"`
}

// Layer (client → server): show at most Layer ("q", "h", "f"; "none"
// pauses) of Track.
type Layer struct {
	Track string `json:"track"`
	Layer string `json:"layer"`
}

// Speaker (server → client): Peer is the room's active speaker.
type Speaker struct {
	Peer string `json:"peer"`
}

func (*Media) MessageType() string   { return TypeMedia }
func (*Tracks) MessageType() string  { return TypeTracks }
func (*Layer) MessageType() string   { return TypeLayer }
func (*Speaker) MessageType() string { return TypeSpeaker }

func (m Media) MarshalJSON() ([]byte, error)  { type plain Media; return typed(TypeMedia, plain(m)) }
func (m Tracks) MarshalJSON() ([]byte, error) { type plain Tracks; return typed(TypeTracks, plain(m)) }
func (m Layer) MarshalJSON() ([]byte, error)  { type plain Layer; return typed(TypeLayer, plain(m)) }
func (m Speaker) MarshalJSON() ([]byte, error) {
	type plain Speaker
	return typed(TypeSpeaker, plain(m))
}
