//go:build linux

package partition

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// window is a time a node was cut off from the majority (or paused),
// until its heal and healWindow after it: the peers of that node may
// then still believe they hold their names after the majority gave
// them back (docs/GUARANTEES.md, "After a heal").
type window struct {
	node       string
	start, end time.Time
}

// report is what the checker found: the operations it checked and the
// guarantees they broke.
type report struct {
	joins, resumes, leaves, evictions, signals, viewEvents int
	violations                                             []string
}

func (r *report) violate(format string, args ...any) {
	if len(r.violations) < 40 {
		r.violations = append(r.violations, fmt.Sprintf(format, args...))
	}
}

func (r *report) String() string {
	return fmt.Sprintf("%d joins, %d resumes, %d leaves, %d evictions, %d signals delivered, %d view events",
		r.joins, r.resumes, r.leaves, r.evictions, r.signals, r.viewEvents)
}

// history is one client's history, with the node it talked to.
type history struct {
	client, node string
	events       []ev
}

// tenure is a time a peer id held a name, as its client saw it.
type tenure struct {
	id, name, client, node string
	start, end             time.Time
	endKind                string // what ended it: leave, drop, closed, name-lost, end of run
}

// check tests the guarantees against the histories of one room's
// clients, up to the instant end:
//   - no client ever sees two peers of one name in its room, nor a peer
//     of its own name;
//   - at any instant a name is held by at most one peer (its client got
//     a welcome and has not left, been evicted or lost its connection),
//     except within the windows of the holder's node;
//   - no signal is delivered twice, to another peer than it was sent to,
//     or under another sender than the one that sent it, and none that
//     was never sent.
func check(hists []history, windows []window, end time.Time) *report {
	r := &report{}
	var tenures []tenure
	sent := map[string]bool{}
	for _, h := range hists {
		for _, e := range h.events {
			if e.Kind == evSent {
				sent[e.Sig.UID] = true
			}
		}
	}
	delivered := map[string]string{} // uid → client it reached
	for _, h := range hists {
		view := map[string]string{}
		var cur *tenure
		endTenure := func(at time.Time, kind string) {
			if cur != nil {
				cur.end, cur.endKind = at, kind
				tenures = append(tenures, *cur)
				cur = nil
			}
		}
		myName := ""
		for _, e := range h.events {
			switch e.Kind {
			case evWelcome:
				if e.Resumed {
					r.resumes++
				} else {
					r.joins++
				}
				if cur != nil && cur.id != e.ID {
					endTenure(e.At, "another welcome")
				}
				if cur == nil {
					cur = &tenure{id: e.ID, name: e.Name, client: h.client, node: h.node, start: e.At}
				}
				myName = e.Name
				clear(view)
				for _, p := range e.Peers {
					view[p.ID] = p.Name
				}
				r.viewEvents++
			case evJoined:
				view[e.ID] = e.Name
				r.viewEvents++
			case evLeft:
				delete(view, e.ID)
				r.viewEvents++
			case evLeave:
				r.leaves++
				endTenure(e.At, e.Kind)
				clear(view)
				myName = ""
			case evDrop, evClosed:
				// A drop may be followed by a resume under the same id: the
				// tenure goes on only if the next welcome resumes it.
				endTenure(e.At, e.Kind)
				clear(view)
				myName = ""
			case evError:
				if e.Code == "name-lost" {
					r.evictions++
					endTenure(e.At, e.Code)
					clear(view)
					myName = ""
				}
			case evSignal:
				r.signals++
				switch {
				case !sent[e.Sig.UID]:
					r.violate("%s got signal %q that nobody sent", h.client, e.Sig.UID)
				case delivered[e.Sig.UID] != "":
					r.violate("signal %s delivered twice (to %s, then to %s at %s)", e.Sig.UID, delivered[e.Sig.UID], h.client, e.At.Format(time.StampMilli))
				case e.Sig.ToID != e.ID:
					r.violate("signal %s for peer %s delivered to %s as peer %s", e.Sig.UID, e.Sig.ToID, h.client, e.ID)
				case e.From != e.Sig.FromID:
					r.violate("signal %s from peer %s delivered as from %s", e.Sig.UID, e.Sig.FromID, e.From)
				}
				delivered[e.Sig.UID] = h.client
			}
			if dup := duplicateName(view, myName); dup != "" {
				r.violate("%s (%s) at %s sees two peers named %q: %v; its last events: %s", h.client, myName, e.At.Format(time.StampMilli), dup, view, recent(h.events, e.At))
			}
		}
		endTenure(end, "end of run")
	}
	// Tenures that merely continue one another (a drop, then a resume of
	// the same id) are one.
	byName := map[string][]tenure{}
	for _, tn := range tenures {
		byName[tn.name] = append(byName[tn.name], tn)
	}
	for name, ts := range byName {
		sort.Slice(ts, func(i, j int) bool { return ts[i].start.Before(ts[j].start) })
		for i := range ts {
			for j := i + 1; j < len(ts); j++ {
				a, b := ts[i], ts[j]
				if a.id == b.id || !b.start.Before(a.end) {
					continue
				}
				s, e := b.start, minTime(a.end, b.end)
				if uncovered(s, e, windows, a.node, b.node) {
					r.violate("name %q held by %s (%s on %s, %s–%s %s) and %s (%s on %s, %s–%s %s) at once", name,
						a.id, a.client, a.node, a.start.Format(time.StampMilli), a.end.Format(time.StampMilli), a.endKind,
						b.id, b.client, b.node, b.start.Format(time.StampMilli), b.end.Format(time.StampMilli), b.endKind)
				}
			}
		}
	}
	return r
}

// duplicateName is a name two peers of view share, or the client's own
// name held by a peer in view; "" when none.
func duplicateName(view map[string]string, mine string) string {
	seen := map[string]bool{}
	if mine != "" {
		seen[mine] = true
	}
	names := make([]string, 0, len(view))
	for _, n := range view {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if seen[n] {
			return n
		}
		seen[n] = true
	}
	return ""
}

// uncovered reports whether some instant of [s, e) lies outside every
// window of nodes a and b.
func uncovered(s, e time.Time, windows []window, a, b string) bool {
	var ws []window
	for _, w := range windows {
		if w.node == a || w.node == b {
			ws = append(ws, w)
		}
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].start.Before(ws[j].start) })
	at := s
	for _, w := range ws {
		if w.start.After(at) {
			break
		}
		if w.end.After(at) {
			at = w.end
		}
	}
	return at.Before(e)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// summary lists violations for a failure message.
func (r *report) summary() string {
	return strings.Join(r.violations, "\n")
}

// recent describes the events of es up to at, the last 8.
func recent(es []ev, at time.Time) string {
	var out []string
	for _, e := range es {
		if e.At.After(at) {
			break
		}
		out = append(out, fmt.Sprintf("%s %s %s %s%s", e.At.Format("05.000"), e.Kind, e.ID, e.Name, e.Code))
	}
	return strings.Join(out[max(0, len(out)-8):], "; ")
}
