// Package rtc holds the W3C WebRTC dictionaries icebox hands to browsers
// and other apps, shared by signaling (welcome, ice-servers), web (the
// page and /api/v1/ice-servers) and the daemon that fills them from
// turnsrv, without any of them importing another.
package rtc

// ICEServer is one RTCIceServer (W3C WebRTC, "The RTCIceServer
// dictionary"): STUN or TURN URLs ("stun:host:port",
// "turn:host:port?transport=udp", "turns:host:443?transport=tcp") and, for
// TURN, the username and credential (TURN REST: "<expiry>:<user>" and
// base64(HMAC-SHA1)). Username and Credential are left out of JSON when
// empty.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}
