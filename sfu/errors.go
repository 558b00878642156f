package sfu

import "errors"

// Errors a client or operator may see. Callers match them with errors.Is;
// the wrapped text says what, where and why.
var (
	// ErrBadSignal is a signal to the SFU that is not {"sdp":…} or
	// {"candidate":…}, or whose SDP or candidate does not parse.
	ErrBadSignal = errors.New("sfu: bad signal")
	// ErrTooLarge is an SDP or candidate over the caps in Limits.
	ErrTooLarge = errors.New("sfu: too large")
	// ErrRoomFull is a join past Limits.ParticipantsPerRoom or
	// Limits.Participants.
	ErrRoomFull = errors.New("sfu: room full")
	// ErrPublishLimit is a track past the room's or server's publisher
	// cap, or a second track of one source (camera, screen, microphone).
	ErrPublishLimit = errors.New("sfu: publish limit")
	// ErrUnknownTrack is a layer request for a track the participant is
	// not subscribed to.
	ErrUnknownTrack = errors.New("sfu: unknown track")
	// ErrBadLayer is a layer request that is not "q", "h", "f" or "none".
	ErrBadLayer = errors.New("sfu: bad layer")
	// ErrClosed is an operation on a closed SFU, room or participant.
	ErrClosed = errors.New("sfu: closed")
	// ErrDuplicate is a join with an id already in the room.
	ErrDuplicate = errors.New("sfu: duplicate participant")
)
