package cluster

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestInSync: a bucket counts as surviving one node's loss only when its
// leader and both replicas hold every write and no reshaping is under
// way; a configured third copy still joining or catching up is not one.
func TestInSync(t *testing.T) {
	cur := &jetstream.PeerInfo{Name: "b", Current: true}
	for _, c := range []struct {
		name string
		ci   *jetstream.ClusterInfo
		want int
	}{
		{"outside a cluster", nil, 1},
		{"no leader", &jetstream.ClusterInfo{Replicas: []*jetstream.PeerInfo{cur, cur}}, 0},
		{"three in sync", &jetstream.ClusterInfo{Leader: "a", Replicas: []*jetstream.PeerInfo{cur, {Name: "c", Current: true}}}, 3},
		{"third catching up", &jetstream.ClusterInfo{Leader: "a", Replicas: []*jetstream.PeerInfo{cur, {Name: "c", Lag: 4}}}, 2},
		{"third offline", &jetstream.ClusterInfo{Leader: "a", Replicas: []*jetstream.PeerInfo{cur, {Name: "c", Current: true, Offline: true}}}, 2},
		{"third pending", &jetstream.ClusterInfo{Leader: "a", Replicas: []*jetstream.PeerInfo{cur, {Name: "c", Current: true, Pending: true}}}, 2},
		{"reshaping", &jetstream.ClusterInfo{Leader: "a", Replicas: []*jetstream.PeerInfo{cur, {Name: "c", Current: true}}, Desired: &jetstream.DesiredClusterInfo{}}, 0},
		{"nil replica", &jetstream.ClusterInfo{Leader: "a", Replicas: []*jetstream.PeerInfo{nil, cur}}, 2},
	} {
		if got := inSync(c.ci); got != c.want {
			t.Errorf("%s: inSync = %d, want %d", c.name, got, c.want)
		}
	}
}
