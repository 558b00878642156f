package turnsrv

import "errors"

var (
	// ErrNoSecret is returned by NewCredentials without any secret.
	ErrNoSecret = errors.New("turnsrv: at least one secret is needed")
	// ErrRealmTooLong is returned by New for a realm longer than
	// MaxRealmLength.
	ErrRealmTooLong = errors.New("turnsrv: realm too long")
	// ErrNoListener is returned by New without any listener.
	ErrNoListener = errors.New("turnsrv: at least one listener is needed")
	// ErrSharedTwice is returned by New when more than one listener has
	// ShareHTTP set.
	ErrSharedTwice = errors.New("turnsrv: only one listener can share HTTP")
	// ErrFrameTooLarge ends a TCP connection whose peer announces a frame
	// longer than pion/turn reads (maxTCPFrame, 1,599 bytes).
	ErrFrameTooLarge = errors.New("turnsrv: frame too large")
	// ErrNotTURN ends a TCP connection that sends bytes that are neither
	// STUN nor ChannelData.
	ErrNotTURN = errors.New("turnsrv: stream is not STUN or ChannelData")
	// ErrAmbiguousFrame marks ChannelData over TCP that pion/turn's
	// STUNConn would frame differently from the guard: empty, or with the
	// STUN magic cookie in its bytes 4 to 7. The frame is dropped
	// (framing.go).
	ErrAmbiguousFrame = errors.New("turnsrv: ChannelData frame that reads as STUN")
)
