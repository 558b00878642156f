// Package roomname is the one definition of a name: a room name, shared
// by config (signaling.rooms keys), signaling (join) and web
// (/r/<room>), and a cluster node name (config's cluster.node and
// signaling/cluster's Config.Name), which follows the same rule.
package roomname

// MaxLength is the longest name, in bytes (all characters are ASCII).
const MaxLength = 64

// Valid reports whether s is a room or node name: 1 to MaxLength
// characters for which NameByte is true (URL-safe, so it can stand in
// /r/<room>).
func Valid(s string) bool {
	if len(s) == 0 || len(s) > MaxLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !NameByte(s[i]) {
			return false
		}
	}
	return true
}

// NameByte reports whether c may stand in a name: A-Z, a-z, 0-9, '-' or
// '_'.
func NameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}
