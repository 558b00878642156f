//go:build linux

package partition

import (
	"strings"
	"testing"
	"time"
)

// TestCheckerFinds: the checker reports each broken guarantee in
// made-up histories, and nothing in a clean one.
func TestCheckerFinds(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	alice := history{client: "a/alice", node: "a", events: []ev{
		{At: at(0), Kind: evWelcome, ID: "A", Name: "alice"},
		{At: at(1), Kind: evSent, ID: "A", Sig: sigData{UID: "s1", FromID: "A", ToID: "C"}},
	}}
	carolC := history{client: "c/carol", node: "c", events: []ev{
		{At: at(0), Kind: evWelcome, ID: "C", Name: "carol", Peers: []peerInfo{{ID: "A", Name: "alice"}}},
		{At: at(2), Kind: evSignal, ID: "C", From: "A", Sig: sigData{UID: "s1", FromID: "A", ToID: "C"}},
		{At: at(10), Kind: evError, ID: "C", Code: "name-lost"},
	}}
	carolA := history{client: "a/taker", node: "a", events: []ev{
		{At: at(5), Kind: evWelcome, ID: "C2", Name: "carol", Peers: []peerInfo{{ID: "A", Name: "alice"}}},
	}}
	end := at(20)
	if r := check([]history{alice, carolC, carolA}, []window{{node: "c", start: at(3), end: at(12)}}, end); len(r.violations) > 0 {
		t.Fatalf("a clean run (carol on the cut-off c evicted within its window): %s", r.summary())
	}
	cases := []struct {
		name  string
		hs    []history
		ws    []window
		wants string
	}{
		{"two carols outside any window", []history{alice, carolC, carolA}, nil, `name "carol" held by`},
		{"a signal delivered twice", []history{alice, carolC, {client: "c/carol2", node: "c", events: []ev{
			{At: at(1), Kind: evWelcome, ID: "C", Name: "dup"},
			{At: at(3), Kind: evSignal, ID: "C", From: "A", Sig: sigData{UID: "s1", FromID: "A", ToID: "C"}}}}}, nil, "delivered twice"},
		{"a signal to the wrong peer", []history{alice, {client: "b/bob", node: "b", events: []ev{
			{At: at(0), Kind: evWelcome, ID: "B", Name: "bob"},
			{At: at(2), Kind: evSignal, ID: "B", From: "A", Sig: sigData{UID: "s1", FromID: "A", ToID: "C"}}}}}, nil, "delivered to"},
		{"a forged sender", []history{alice, {client: "c/carol", node: "c", events: []ev{
			{At: at(0), Kind: evWelcome, ID: "C", Name: "carol"},
			{At: at(2), Kind: evSignal, ID: "C", From: "X", Sig: sigData{UID: "s1", FromID: "A", ToID: "C"}}}}}, nil, "delivered as from"},
		{"two peers of one name in a view", []history{{client: "b/bob", node: "b", events: []ev{
			{At: at(0), Kind: evWelcome, ID: "B", Name: "bob", Peers: []peerInfo{{ID: "C", Name: "carol"}}},
			{At: at(1), Kind: evJoined, ID: "C2", Name: "carol"}}}}, nil, "sees two peers named"},
	}
	for _, c := range cases {
		r := check(c.hs, c.ws, end)
		if !strings.Contains(r.summary(), c.wants) {
			t.Errorf("%s: got %q, want a violation with %q", c.name, r.summary(), c.wants)
		}
	}
}
