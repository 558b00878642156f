// Package netlab builds small networks of Linux network namespaces for
// tests: namespaces joined by veth pairs and bridges, routers with
// nftables rules (NATs, firewalls), programs run inside a namespace
// (ip netns exec), and connections dialled from the test process into a
// namespace. A Fabric is a LAN of hosts whose routes a test cuts, heals,
// delays and loses packets on, one way at a time (partition tests).
//
// Everything a Lab makes is named "iblab-<pid>-<n>-<role>", so two test
// processes never collide, and is removed when the test that made it ends
// (testing.TB.Cleanup), whether it passed or failed. Namespaces left by a
// process that died before its clean-up (a crash, a kill -9) are removed
// by the next New: a name whose pid is not a live process is stale.
//
// It needs root, iproute2's ip and nftables' nft; New skips the test
// where they are missing, or fails it under CI (internal/testenv). It is
// Linux only: elsewhere the package is empty.
package netlab
