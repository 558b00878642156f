package sfu

import "sort"

// upgradeHeadroom is how much more than its extra bitrate a track's
// move to a higher layer than it has must fit in the budget: a layer is
// taken only with room to spare, so that an estimate near a layer's rate
// does not switch it up and down at every allocation, each switch
// costing a keyframe.
const upgradeHeadroom = 1.25

// allocTrack is one video down-track as the allocation sees it.
type allocTrack struct {
	screen    bool
	requested int // largest layer asked for; noLayer: paused
	current   int // layer chosen at the last allocation; noLayer: none
	rates     [len(layerRIDs)]float64
	available [len(layerRIDs)]bool
}

// allocate picks a layer for every track (noLayer for none) so their
// bitrates sum to at most budget (bit/s) where it can: every track the
// subscriber shows gets its lowest available layer, even over budget;
// then, screen shares first, then larger requests, each track is raised
// to the highest layer up to its request that still fits, above its
// current layer with upgradeHeadroom.
func allocate(budget float64, tracks []allocTrack) []int {
	chosen := make([]int, len(tracks))
	order := make([]int, len(tracks))
	for i, t := range tracks {
		order[i] = i
		chosen[i] = noLayer
		if t.requested == noLayer {
			continue
		}
		for l := 0; l <= t.requested && l < len(t.available); l++ {
			if t.available[l] {
				chosen[i] = l
				budget -= t.rates[l]
				break
			}
		}
	}
	sort.SliceStable(order, func(a, b int) bool {
		ta, tb := tracks[order[a]], tracks[order[b]]
		if ta.screen != tb.screen {
			return ta.screen
		}
		return ta.requested > tb.requested
	})
	for _, i := range order {
		t := tracks[i]
		if chosen[i] == noLayer {
			continue
		}
		for l := min(t.requested, len(t.available)-1); l > chosen[i]; l-- {
			need := t.rates[l] - t.rates[chosen[i]]
			if l > t.current {
				need *= upgradeHeadroom
			}
			if t.available[l] && need <= budget {
				budget -= t.rates[l] - t.rates[chosen[i]]
				chosen[i] = l
				break
			}
		}
	}
	return chosen
}
