//go:build linux && (amd64 || arm64)

package udprelay

import "runtime"

// endPionReader ends the goroutine that calls it, with runtime.Goexit,
// and never returns. It is the one place this package relies on what
// pion/turn (PionTurnVersion) does around a relay socket, and its only
// caller is relaySock.ReadFrom.
//
// pion/turn v4 starts a reader for each allocation
// (internal/allocation.Allocation.packetHandler, started by
// Manager.CreateAllocation) that loops on the relay socket's ReadFrom and
// would otherwise hold a 2 KiB stack and a 1.6 KiB buffer for the
// allocation's life, waiting for datagrams the relay loop reads instead.
// Goexit runs the reader's deferred calls (it has none) and ends it; the
// allocation lives on in pion/turn's manager. The reader's only other
// duty, deleting the allocation when ReadFrom fails, cannot arise here:
// a relay socket is closed only by the allocation's own Close or by
// Relay.Close at shutdown. Allocation expiry, Refresh with lifetime 0,
// and permission and channel binding timers run on pion/turn's timers and
// manager, not in the reader, and Server.Close closes allocations through
// the manager.
//
// On a pion/turn upgrade, re-check in internal/allocation: that the
// reader still has no deferred work and nothing after its loop but the
// deletion on error; that deletion (lifetime 0, expiry, Manager.Close)
// does not wait for the reader to end; and that permission and channel
// timers do not run on the reader. turnsrv's TestPionCoupling checks each
// of these against a real server.
func endPionReader() {
	runtime.Goexit()
}
