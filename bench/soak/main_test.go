package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

// series makes n samples 5 s apart of one life, each metric from f
// (seconds since the first sample, metric index in metrics).
func series(n, life int, f func(sec float64, metric int) int) []point {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ps := make([]point, n)
	for i := range ps {
		sec := float64(step * i)
		ps[i] = point{at: t0.Add(time.Duration(sec) * time.Second), life: life,
			rssKiB: f(sec, 0), fds: f(sec, 1), goroutines: f(sec, 2), heapKiB: f(sec, 3)}
	}
	return ps
}

// step is the sampling period in the tests, in seconds: make test's.
const step = 5

// base is each metric's steady level: 60 MiB RSS, 40 descriptors, 120
// goroutines, 20 MiB heap.
var base = []float64{60 << 10, 40, 120, 20 << 10}

// leakTotal is what an injected leak of metric m adds over a run: well
// past its noise floor, which dominates the small levels.
func leakTotal(m int) float64 { return 4*metrics[m].floor + 0.5*base[m] }

// wobble is a deterministic noise of about ±2% of the level.
func wobble(sec float64, m int) float64 {
	return 0.02 * base[m] * math.Sin(sec/7+float64(m))
}

// TestGrowthFindsLeaks: growth passes flat and levelling-off series and
// fails a leak in each metric, a steady one (the same slope in both
// halves) as well as one that speeds up, in a 3-minute run (36 samples)
// and over an hour.
func TestGrowthFindsLeaks(t *testing.T) {
	flat := func(sec float64, m int) int { return int(base[m] + wobble(sec, m)) }
	warmup := func(sec float64, m int) int {
		// Up by half its level, most of it in the first minute.
		return int(base[m] + 0.5*base[m]*(1-math.Exp(-sec/30)) + wobble(sec, m))
	}
	for _, n := range []int{36, 720} {
		if got, _ := growth("flat", series(n, 1, flat)); len(got) > 0 {
			t.Errorf("%d samples, flat: %v", n, got)
		}
		if got, _ := growth("warm-up", series(n, 1, warmup)); len(got) > 0 {
			t.Errorf("%d samples, warming up: %v", n, got)
		}
		for leaking := range metrics {
			perSec := leakTotal(leaking) / float64(step*n)
			steady := func(sec float64, m int) int {
				v := float64(flat(sec, m))
				if m == leaking {
					v += perSec * sec
				}
				return int(v)
			}
			faster := func(sec float64, m int) int {
				v := float64(flat(sec, m))
				if m == leaking {
					v += perSec * sec * sec / float64(step*n)
				}
				return int(v)
			}
			for name, f := range map[string]func(float64, int) int{"steady": steady, "speeding up": faster} {
				got, _ := growth("n0", series(n, 1, f))
				if len(got) != 1 || !strings.Contains(got[0], metrics[leaking].name+" grows") {
					t.Errorf("%d samples, %s leak of %s: got %q, want one failure naming it", n, name, metrics[leaking].name, got)
				}
			}
		}
	}
}

// TestGrowthPerLife: a restart's drop and a new life's warm-up are not
// growth, even one that takes most of a minute (as after a restart in
// the middle of a 3-minute run); a leak in either life is.
func TestGrowthPerLife(t *testing.T) {
	warm := func(level float64) func(sec float64, m int) int {
		return func(sec float64, m int) int {
			return int(level*base[m] + 0.3*base[m]*(1-math.Exp(-sec/20)) + wobble(sec, m))
		}
	}
	// Up by half its level again, linearly, over 55 s, then flat.
	slow := func(sec float64, m int) int {
		return int(base[m] + 0.5*base[m]*min(sec, 55)/55 + wobble(sec, m))
	}
	leak := func(sec float64, m int) int {
		return int(base[m] + wobble(sec, m) + leakTotal(m)*sec/30)
	}
	// Life 1 ends high, life 2 starts low: taken as one, the series falls.
	twoLives := append(series(18, 1, warm(1.5)), series(18, 2, warm(1))...)
	if got, _ := growth("n0", twoLives); len(got) > 0 {
		t.Errorf("two clean lives: %v", got)
	}
	if got, _ := growth("n0", append(series(18, 1, slow), series(18, 2, slow)...)); len(got) > 0 {
		t.Errorf("two lives warming up for 55 s: %v", got)
	}
	for _, hs := range [][]point{
		append(series(18, 1, leak), series(18, 2, warm(1))...),
		append(series(18, 1, warm(1)), series(18, 2, leak)...),
	} {
		if got, _ := growth("n0", hs); len(got) != len(metrics) {
			t.Errorf("a leak in one life of two: got %q, want a failure for each metric", got)
		}
	}
	// Lives with fewer than 5 samples past their warm-up are not judged.
	if got, _ := growth("n0", series(16, 1, leak)); len(got) > 0 {
		t.Errorf("16 samples (4 past the warm-up): %v", got)
	}
}

// gcSawtooth is a metric that climbs at a varying rate from its level to
// twice it and drops back, as the heap in use does between collections
// under churn; the cycle lasts 15 to 45 s (a deterministic sequence), so
// samples fall anywhere in it.
func gcSawtooth(m int) func(sec float64) float64 {
	var at []float64 // cycle starts, in seconds
	next, x := 0.0, uint32(7)
	return func(sec float64) float64 {
		for len(at) == 0 || at[len(at)-1] <= sec {
			at = append(at, next)
			x = x*1664525 + 1013904223
			next += 15 + 30*float64(x>>8)/float64(1<<24)
		}
		i := len(at) - 2
		for at[i] > sec {
			i--
		}
		return base[m] * (1 + (sec-at[i])/(at[i+1]-at[i]))
	}
}

// TestGrowthSawtooth: a heap that swings by its own level with the
// collector's cycle is not growth, over 3 minutes, an hour, or six
// 10-minute lives; the same with a steady leak under it is.
func TestGrowthSawtooth(t *testing.T) {
	const heap = 3
	saw := gcSawtooth(heap)
	swinging := func(sec float64, m int) int {
		if m == heap {
			return int(saw(sec))
		}
		return int(base[m] + wobble(sec, m))
	}
	sixLives := func(f func(sec float64, m int) int) []point {
		var ps []point
		for k := range 6 {
			life := series(120, k+1, func(sec float64, m int) int { return f(sec+600*float64(k), m) })
			for i := range life {
				life[i].at = life[i].at.Add(time.Duration(k) * 10 * time.Minute)
			}
			ps = append(ps, life...)
		}
		return ps
	}
	for _, n := range []int{36, 720} {
		if got, _ := growth("n0", series(n, 1, swinging)); len(got) > 0 {
			t.Errorf("%d samples, a sawtooth heap: %v", n, got)
		}
		// In 3 minutes a leak shows only once it outgrows the swing
		// (base[heap]).
		total := leakTotal(heap)
		if n == 36 {
			total += base[heap]
		}
		perSec := total / float64(step*n)
		leaking := func(sec float64, m int) int {
			if m == heap {
				return int(saw(sec) + perSec*sec)
			}
			return swinging(sec, m)
		}
		if got, _ := growth("n0", series(n, 1, leaking)); len(got) != 1 || !strings.Contains(got[0], "live heap KiB grows") {
			t.Errorf("%d samples, a leak under a sawtooth heap: got %q, want one failure naming the heap", n, got)
		}
	}
	if got, _ := growth("n0", sixLives(swinging)); len(got) > 0 {
		t.Errorf("six 10-minute lives, a sawtooth heap: %v", got)
	}
}

// TestGrowthComparesLives: in a run with restarts, a life that warms up
// slowly to the level the other lives reach quickly, or comes back to it
// after a dip, is let off, with a note; one that climbs past that level,
// or lives that all climb alike, are not.
func TestGrowthComparesLives(t *testing.T) {
	// Each metric's plateau is well past its noise floor above its level.
	plateau := func(m int) float64 { return base[m] + 3*metrics[m].floor + 0.5*base[m] }
	quick := func(sec float64, m int) int {
		return int(base[m] + (plateau(m)-base[m])*(1-math.Exp(-sec/20)) + wobble(sec, m))
	}
	// Linear over the whole 10-minute life, to top in the end.
	slowTo := func(top float64) func(sec float64, m int) int {
		return func(sec float64, m int) int {
			return int(base[m] + (top-base[m])*sec/600 + wobble(sec, m))
		}
	}
	lives := func(fs ...func(sec float64, m int) int) []point {
		var ps []point
		for k, f := range fs {
			life := series(120, k+1, f)
			for i := range life {
				life[i].at = life[i].at.Add(time.Duration(k) * 10 * time.Minute)
			}
			ps = append(ps, life...)
		}
		return ps
	}
	warming := func(sec float64, m int) int { return slowTo(plateau(m)-0.05*(plateau(m)-base[m]))(sec, m) }
	got, notes := growth("n0", lives(quick, warming, quick))
	if len(got) > 0 {
		t.Errorf("a life warming slowly to the others' level: %v", got)
	}
	if len(notes) != len(metrics) || !strings.Contains(notes[0], "life 2") {
		t.Errorf("a life let off: notes %q, want one naming life 2 per metric", notes)
	}
	// Less work for a while (the machine busy elsewhere), then back, a
	// little above the others' level but within noise.
	recovering := func(sec float64, m int) int {
		v := plateau(m) + 0.5*metrics[m].floor
		if sec > 240 && sec < 420 {
			v = plateau(m) - 2*metrics[m].floor
		}
		return int(v + wobble(sec, m))
	}
	if got, _ := growth("n0", lives(quick, recovering, quick)); len(got) > 0 {
		t.Errorf("a life back from a dip, within noise of the others' level: %v", got)
	}
	past := func(sec float64, m int) int { return slowTo(plateau(m)+leakTotal(m))(sec, m) }
	if got, _ := growth("n0", lives(quick, past, quick)); len(got) != len(metrics) {
		t.Errorf("a life climbing past the others' level: got %q, want a failure per metric", got)
	}
	if got, _ := growth("n0", lives(past, past, past)); len(got) != 3*len(metrics) {
		t.Errorf("every life climbing alike: got %q, want a failure per life and metric", got)
	}
}
