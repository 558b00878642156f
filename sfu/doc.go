// Package sfu is icebox's embedded selective forwarding unit (SFU), on
// pion/webrtc v4 and pion/interceptor.
//
// Each participant of a Room has one RTCPeerConnection to the server. Over
// it the participant publishes a camera (VP8 simulcast with the RTP stream
// ids "q", "h", "f", scaled down 4, 2 and 1 times; H.264 or VP8 without
// simulcast is a single layer), a microphone (Opus with the RFC 6464 audio
// level) and a screen share (one layer, forwarded before cameras), and it
// receives everyone else's tracks.
//
// Forwarding: every subscriber has a DownTrack per published track that
// rewrites SSRC, sequence numbers, timestamps and the VP8 picture id so the
// subscriber sees one continuous stream whatever layer it is fed. A layer
// switch happens only on a keyframe of the new layer; the SFU asks the
// publisher for one with a PLI (RFC 4585 §6.3.1), at most once per
// PLIInterval per layer. Retransmissions (RFC 4585 §6.2.1 NACK) are
// answered from pion/interceptor's packet cache (the last 256 packets of
// each forwarded stream, sendHistory), each packet at most 3
// times and 200 ms apart (Stats.ResendsRefused counts the rest): a
// receiver that asks again at each of its intervals, before the last
// copy could arrive, would otherwise have a congested link carry one
// packet many times. RTCP sender and
// receiver reports (RFC 3550 §6.4) are sent by its report interceptors.
// Publishers may retransmit on an RTX stream (RFC 4588; payload types 97
// for VP8 and 103 for H.264), which is also what a browser's bandwidth
// probes ride on; pion/webrtc hands the repaired packets to the forwarder
// as packets of the stream they repair.
//
// Each layer of a published track has a reader and a forwarder, apart,
// with a queue of 512 packets between them (past it a packet is dropped
// and counted in Stats.ForwardQueueDrops). pion's interceptors stamp a
// packet's arrival for the publisher's transport-wide congestion control
// feedback when it is read, so the reader never waits for the
// subscribers: the stamps are the network's, not the SFU's work, and a
// room of many does not lower its publishers' estimates.
//
// Each subscriber's downlink is estimated with transport-wide congestion
// control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01)
// and Google congestion control (pion/interceptor's gcc); every
// AllocateInterval the SFU forwards, track by track, the highest layer that
// fits both that estimate and the largest layer the subscriber asked for
// (Participant.RequestLayer). Audio is always forwarded and its bitrate is
// taken from the estimate first; screen shares come before cameras. A
// layer's bitrate is a mean over about 2 s, so that a keyframe does not
// swing it, and a track moves up only when the higher layer fits with a
// quarter to spare, so that an estimate near a layer's rate does not
// switch it at every allocation (each switch costs a keyframe). GCC lets
// an estimate grow to at most 1.5 times what the subscriber receives, so
// while a subscriber gets less than it asked for, on a path without loss
// or overuse, the SFU sends copies of forwarded video packets as probes,
// up to 90% of the estimate (probe_bwe.go): without them, one held to
// low layers by a past congestion could stay there on a freed link.
//
// The active speaker is computed from the publishers' audio levels
// (RFC 6464) and reported through Events.Speaker.
//
// Signaling is the caller's: Participant.HandleSignal takes what the
// client sent to the peer "sfu" ({"sdp":…} or {"candidate":…}) and
// Events.Signal carries what the SFU sends back. The client is the only
// offerer: when there are tracks for it, the SFU asks for an offer with
// that many more recvonly media sections ({"renegotiate":…}), so offers
// never cross. A client publishes with sendonly transceivers. A track
// that leaves makes its section inactive at the next offer (the SFU asks
// for one), and a later track of the same kind takes that section again,
// so a long meeting's sections stay as many as the tracks received at
// once.
package sfu
