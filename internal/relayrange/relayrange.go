// Package relayrange holds the one description of a TURN server's relay,
// shared by signaling/cluster (a node announces its own in heartbeats),
// turnsrv (RelayPeers validates the other nodes' claims against its peer
// filter) and the daemon that passes one to the other, without either
// importing the other.
package relayrange

import "net/netip"

// RelayRange is a TURN server's relayed address and its relay ports,
// Min to Max inclusive: a cluster node's, as its heartbeats claim. Its
// JSON form is part of the cluster's heartbeat (signaling/cluster
// wire.go): {"addr":"203.0.113.7","Min":49152,"Max":65535}.
type RelayRange struct {
	Addr     netip.Addr `json:"addr"`
	Min, Max uint16
}
