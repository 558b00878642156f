package sfu

import "sync"

// Active speaker detection from RFC 6464 audio levels (0 is 0 dBov, the
// loudest; 127 is -127 dBov, silence).
const (
	// speakingLevel is the mean level (-dBov) a participant must be
	// louder than to be the active speaker.
	speakingLevel = 60
	// speakerMargin is how many dB louder than the current speaker a
	// challenger must be to take over, so two talkers do not flap.
	speakerMargin = 6
	// speakerWindow is how many allocation intervals the mean runs over.
	speakerWindow = 3
)

// speakers accumulates audio levels per participant and picks the active
// speaker once per allocation interval.
type speakers struct {
	mu      sync.Mutex
	sums    map[string]*levelSum
	current string
}

type levelSum struct {
	loudness [speakerWindow]float64 // mean 127-level per interval
	sum      float64
	n        int
	slot     int
}

func (s *speakers) observe(peer string, level byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sums == nil {
		s.sums = make(map[string]*levelSum)
	}
	l := s.sums[peer]
	if l == nil {
		l = &levelSum{}
		s.sums[peer] = l
	}
	l.sum += float64(127 - min(level, 127))
	l.n++
}

func (s *speakers) forget(peer string) {
	s.mu.Lock()
	delete(s.sums, peer)
	if s.current == peer {
		s.current = ""
	}
	s.mu.Unlock()
}

// tick closes the interval and returns the active speaker and whether it
// changed. A participant who sent nothing in an interval counts as silent.
func (s *speakers) tick() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	best, bestLoud, curLoud := "", 0.0, 0.0
	for peer, l := range s.sums {
		mean := 0.0
		if l.n > 0 {
			mean = l.sum / float64(l.n)
		}
		l.loudness[l.slot] = mean
		l.slot = (l.slot + 1) % speakerWindow
		l.sum, l.n = 0, 0
		loud := 0.0
		for _, v := range l.loudness {
			loud += v
		}
		loud /= speakerWindow
		if peer == s.current {
			curLoud = loud
		}
		if loud > bestLoud || (loud == bestLoud && peer < best) {
			best, bestLoud = peer, loud
		}
	}
	if bestLoud < 127-speakingLevel || best == s.current {
		return s.current, false
	}
	if s.current != "" && curLoud >= 127-speakingLevel && bestLoud < curLoud+speakerMargin {
		return s.current, false
	}
	s.current = best
	return best, true
}
