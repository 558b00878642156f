//go:build !unix

package turnsrv

// fdLimit reports that the descriptor limit is unknown here.
func fdLimit() (uint64, bool) { return 0, false }
