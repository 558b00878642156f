package daemon

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
