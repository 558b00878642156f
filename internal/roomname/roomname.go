// Package roomname is the one definition of a room name, shared by config
// (signaling.rooms keys), signaling (join) and web (/r/<room>).
package roomname

// MaxLength is the longest room name, in bytes (all characters are ASCII).
const MaxLength = 64

// Valid reports whether s is a room name: 1 to MaxLength characters of
// A-Z, a-z, 0-9, '-' and '_' (URL-safe, so it can stand in /r/<room>).
func Valid(s string) bool {
	if len(s) == 0 || len(s) > MaxLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
