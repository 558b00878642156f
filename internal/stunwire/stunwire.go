// Package stunwire holds the STUN wire constants that icebox's own
// parsers and builders share (turnsrv's guard and framing, the udprelay
// fast path, the audit client). It imports nothing, so any package may
// use it without an import cycle.
package stunwire

// MagicCookie is the fixed STUN header field in bytes 4-7 of every
// message (RFC 8489 §5); XOR-*-ADDRESS attributes XOR the port with its
// top 16 bits and the address with it (RFC 8489 §14.2).
const MagicCookie = 0x2112A442
