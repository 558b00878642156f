package daemon

import "runtime"

// relayPlan decides how the TURN relay uses the CPUs: sockets is how many
// SO_REUSEPORT sockets serve each UDP listener (turn.udp_sockets, or one
// per core when it is 0), and loops how many relay loops serve them, one
// per socket, so udp_sockets: 1 runs one loop. cores is the CPUs Go may
// use (Options.Cores, or GOMAXPROCS now when that is 0).
func relayPlan(udpSockets, cores int) (sockets, loops int) {
	sockets = udpSockets
	if sockets <= 0 {
		sockets = max(1, cores)
	}
	return sockets, sockets
}

// setProcs sets GOMAXPROCS to cores + loops, a process-wide setting made
// by the daemon and by nothing below it: each relay loop (turnsrv's
// udprelay) holds its thread while it waits in epoll_wait, so Go code
// gets as many Ps again to keep its cores. It sets rather than adds, so a
// second daemon in the same process (tests) does not raise it further.
// With cores <= 0 or no loops it changes nothing.
func setProcs(cores, loops int) {
	if cores <= 0 || loops <= 0 {
		return
	}
	runtime.GOMAXPROCS(cores + loops)
}
