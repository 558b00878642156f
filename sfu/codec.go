package sfu

import "encoding/binary"

// vp8Descriptor is the part of the VP8 RTP payload descriptor
// (RFC 7741 §4.2) the SFU reads and rewrites.
type vp8Descriptor struct {
	start      bool // S: first packet of a partition
	partition  uint8
	pictureID  uint16
	pidOffset  int // byte offset of the picture id in the payload; 0: none
	pidLong    bool
	headerSize int // descriptor length; the VP8 payload follows
}

// parseVP8 reads the payload descriptor of a VP8 RTP payload; ok is false
// when the payload is too short for what its flags announce.
func parseVP8(p []byte) (d vp8Descriptor, ok bool) {
	if len(p) < 1 {
		return d, false
	}
	d.start = p[0]&0x10 != 0
	d.partition = p[0] & 0x07
	i := 1
	if p[0]&0x80 != 0 { // X: extension octet
		if len(p) < 2 {
			return d, false
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 { // I: picture id
			if len(p) < i+1 {
				return d, false
			}
			d.pidOffset = i
			if p[i]&0x80 != 0 { // M: 15-bit picture id
				if len(p) < i+2 {
					return d, false
				}
				d.pidLong = true
				d.pictureID = binary.BigEndian.Uint16(p[i:]) & 0x7fff
				i += 2
			} else {
				d.pictureID = uint16(p[i] & 0x7f)
				i++
			}
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if x&0x30 != 0 { // T or K: TID/Y/KEYIDX octet
			i++
		}
	}
	if len(p) < i {
		return d, false
	}
	d.headerSize = i
	return d, true
}

// isVP8Keyframe reports whether p is the first packet of a VP8 key frame:
// the start of partition 0 whose frame tag has P (inverse key frame flag)
// clear (RFC 6386 §9.1, RFC 7741 §4.3).
func isVP8Keyframe(p []byte) bool {
	d, ok := parseVP8(p)
	if !ok || !d.start || d.partition != 0 || len(p) <= d.headerSize {
		return false
	}
	return p[d.headerSize]&0x01 == 0
}

// setVP8PictureID writes id into the descriptor of p, which parseVP8 read
// as d.
func setVP8PictureID(p []byte, d vp8Descriptor, id uint16) {
	switch {
	case d.pidOffset == 0:
	case d.pidLong:
		binary.BigEndian.PutUint16(p[d.pidOffset:], 0x8000|id&0x7fff)
	default:
		p[d.pidOffset] = byte(id & 0x7f)
	}
}

// isH264Keyframe reports whether p starts an IDR picture or carries a
// sequence parameter set: a single NAL unit of type 5 or 7, a STAP-A
// holding one, or the first fragment of an FU-A of type 5 (RFC 6184 §5).
func isH264Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch t := p[0] & 0x1f; {
	case t == 5 || t == 7:
		return true
	case t == 24: // STAP-A: 16-bit sizes, each followed by a NAL unit
		for i := 1; i+2 < len(p); {
			n := int(binary.BigEndian.Uint16(p[i:]))
			i += 2
			if n == 0 || i+n > len(p) {
				return false
			}
			if nt := p[i] & 0x1f; nt == 5 || nt == 7 {
				return true
			}
			i += n
		}
	case t == 28: // FU-A
		return len(p) >= 2 && p[1]&0x80 != 0 && p[1]&0x1f == 5
	}
	return false
}
