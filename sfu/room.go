package sfu

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// Room is one SFU room: its participants and what they publish. Every
// participant receives every track published in the room but its own.
type Room struct {
	sfu      *SFU
	name     string
	speakers speakers

	mu           sync.Mutex
	participants map[string]*Participant
	tracks       map[string]*publishedTrack
	publishers   map[string]bool
	closed       bool

	stopOnce sync.Once
	stopped  chan struct{}
	done     chan struct{}
}

func newRoom(s *SFU, name string) *Room {
	r := &Room{sfu: s, name: name,
		participants: make(map[string]*Participant),
		tracks:       make(map[string]*publishedTrack),
		publishers:   make(map[string]bool),
		stopped:      make(chan struct{}),
		done:         make(chan struct{}),
	}
	go r.loop()
	return r
}

// Name is the room's name.
func (r *Room) Name() string { return r.name }

// Join adds a participant with the signaling peer id id; ev carries what
// the SFU tells it. It subscribes to every track already published.
// Errors: ErrRoomFull past the room's or server's cap, ErrDuplicate for an
// id already in the room, ErrClosed.
func (r *Room) Join(id string, ev Events) (*Participant, error) {
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return nil, ErrClosed
	case r.participants[id] != nil:
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: %q in room %q", ErrDuplicate, id, r.name)
	case len(r.participants) >= r.sfu.cfg.Limits.ParticipantsPerRoom:
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: room %q holds %d participants", ErrRoomFull, r.name, len(r.participants))
	}
	if err := r.sfu.admit(); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	p, err := newParticipant(r, id, ev)
	if err != nil {
		r.mu.Unlock()
		r.sfu.release()
		return nil, err
	}
	r.participants[id] = p
	tracks := make([]*publishedTrack, 0, len(r.tracks))
	for _, t := range r.tracks {
		tracks = append(tracks, t)
	}
	r.mu.Unlock()
	sort.Slice(tracks, func(i, j int) bool { return tracks[i].id < tracks[j].id })
	for _, t := range tracks {
		p.subscribe(t)
	}
	p.sendTracks()
	if len(tracks) > 0 {
		p.negotiate()
	}
	return p, nil
}

// admitPublisher counts p as a publisher of the room (once).
func (r *Room) admitPublisher(p *Participant) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.publishers[p.id] {
		return nil
	}
	if len(r.publishers) >= r.sfu.cfg.Limits.PublishersPerRoom {
		return fmt.Errorf("%w: room %q has %d publishers", ErrPublishLimit, r.name, len(r.publishers))
	}
	if err := r.sfu.admitPublisher(); err != nil {
		return err
	}
	r.publishers[p.id] = true
	return nil
}

// publish makes t available to every other participant.
func (r *Room) publish(t *publishedTrack) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.tracks[t.id] = t
	subs := r.othersLocked(t.owner.id)
	r.mu.Unlock()
	for _, p := range subs {
		p.subscribe(t)
		p.sendTracks()
		p.negotiate()
	}
}

// unpublish takes t out of the room, if it is there, and away from every
// subscriber.
func (r *Room) unpublish(t *publishedTrack) {
	r.mu.Lock()
	if r.tracks[t.id] != t {
		r.mu.Unlock()
		return
	}
	delete(r.tracks, t.id)
	subs := r.othersLocked(t.owner.id)
	r.mu.Unlock()
	if t.source == SourceMicrophone {
		r.speakers.forget(t.owner.id)
	}
	withdraw(subs, []*publishedTrack{t})
}

// withdraw takes the tracks gone away from each of subs, telling each
// the new track list.
func withdraw(subs []*Participant, gone []*publishedTrack) {
	for _, s := range subs {
		changed := false
		for _, t := range gone {
			changed = s.unsubscribe(t) || changed
		}
		if changed {
			s.sendTracks()
			s.negotiate()
		}
	}
}

// tracksChanged tells every other participant the new layer list of a
// track of owner.
func (r *Room) tracksChanged(owner string) {
	r.mu.Lock()
	subs := r.othersLocked(owner)
	r.mu.Unlock()
	for _, p := range subs {
		p.sendTracks()
	}
}

func (r *Room) othersLocked(id string) []*Participant {
	list := make([]*Participant, 0, len(r.participants))
	for pid, p := range r.participants {
		if pid != id {
			list = append(list, p)
		}
	}
	return list
}

// leave removes p and its tracks from the room.
func (r *Room) leave(p *Participant) {
	r.mu.Lock()
	if r.participants[p.id] != p {
		r.mu.Unlock()
		return
	}
	delete(r.participants, p.id)
	var gone []*publishedTrack
	for id, t := range r.tracks {
		if t.owner == p {
			gone = append(gone, t)
			delete(r.tracks, id)
		}
	}
	wasPublisher := r.publishers[p.id]
	delete(r.publishers, p.id)
	subs := r.othersLocked(p.id)
	empty := len(r.participants) == 0
	if empty {
		r.closed = true // a join racing this one opens a new room
	}
	r.mu.Unlock()
	r.sfu.release()
	if wasPublisher {
		r.sfu.releasePublisher()
	}
	r.speakers.forget(p.id)
	withdraw(subs, gone)
	if empty {
		r.sfu.roomEmpty(r)
	}
}

func (r *Room) trackCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.tracks)
}

func (r *Room) snapshot() ([]*Participant, []*publishedTrack) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := make([]*Participant, 0, len(r.participants))
	for _, p := range r.participants {
		ps = append(ps, p)
	}
	ts := make([]*publishedTrack, 0, len(r.tracks))
	for _, t := range r.tracks {
		ts = append(ts, t)
	}
	return ps, ts
}

// loop measures layer bitrates, applies publish caps, names the active
// speaker and chooses every subscriber's layers, once per
// AllocateInterval, until the room stops.
func (r *Room) loop() {
	defer close(r.done)
	tick := time.NewTicker(r.sfu.cfg.AllocateInterval)
	defer tick.Stop()
	last := r.sfu.cfg.Now()
	for {
		select {
		case <-r.stopped:
			return
		case <-tick.C:
		}
		now := r.sfu.cfg.Now()
		ps, ts := r.snapshot()
		for _, t := range ts {
			t.measure(now.Sub(last))
		}
		last = now
		for _, p := range ps {
			p.enforcePublishCap()
		}
		if speaker, changed := r.speakers.tick(); changed {
			for _, p := range ps {
				if p.ev.Speaker != nil {
					p.ev.Speaker(speaker)
				}
			}
		}
		for _, p := range ps {
			p.allocate()
		}
	}
}

func (r *Room) stop() {
	r.stopOnce.Do(func() { close(r.stopped) })
	<-r.done
}

// close ends every participant's peer connection.
func (r *Room) close() {
	r.mu.Lock()
	r.closed = true
	ps := make([]*Participant, 0, len(r.participants))
	for _, p := range r.participants {
		ps = append(ps, p)
	}
	r.mu.Unlock()
	for _, p := range ps {
		_ = p.Close()
	}
	r.stop()
}
