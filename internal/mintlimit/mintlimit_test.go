package mintlimit

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/clientaddr"
)

// clock is an injected clock the tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClocked(perMinute float64, burst int) (*Limiter, *clock) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := New(perMinute, burst)
	l.Now = c.now
	return l, c
}

// TestBurstThenRate: a key gets burst tokens, is refused with a
// Retry-After of one token's time, and gets one more after that time; the
// three sources share one bucket and refusals are counted by source.
func TestBurstThenRate(t *testing.T) {
	l, c := newClocked(6, 3) // one token per 10 s
	sources := []string{SourcePage, SourceWS, SourceAPI}
	for i, src := range sources {
		if _, _, ok := l.Take("198.51.100.1/32", src); !ok {
			t.Fatalf("take %d (%s): refused within the burst", i+1, src)
		}
	}
	for _, src := range sources {
		_, wait, ok := l.Take("198.51.100.1/32", src)
		if ok {
			t.Fatalf("%s past the burst: allowed, want refused", src)
		}
		if wait <= 0 || wait > 10*time.Second {
			t.Errorf("%s: retry after %v, want (0, 10s]", src, wait)
		}
	}
	if _, _, ok := l.Take("198.51.100.2/32", SourcePage); !ok {
		t.Error("another key: refused, want allowed")
	}
	c.add(10 * time.Second)
	if _, _, ok := l.Take("198.51.100.1/32", SourceWS); !ok {
		t.Error("after one token's time: refused, want allowed")
	}
	got := l.Refused()
	for _, src := range sources {
		if got[src] != 1 {
			t.Errorf("refused[%s]: got %d, want 1", src, got[src])
		}
	}
}

// TestReturn: a returned grant puts its token back.
func TestReturn(t *testing.T) {
	l, _ := newClocked(1, 1)
	g, _, ok := l.Take("k", SourceWS)
	if !ok {
		t.Fatal("first take refused")
	}
	g.Return()
	if _, _, ok := l.Take("k", SourceWS); !ok {
		t.Error("take after Return: refused, want allowed")
	}
	if _, _, ok := l.Take("k", SourceWS); ok {
		t.Error("second take: allowed, want refused")
	}
}

// TestOffAndNil: a rate of 0 and a nil Limiter allow everything.
func TestOffAndNil(t *testing.T) {
	var nilL *Limiter
	for name, l := range map[string]*Limiter{"rate 0": New(0, 1), "rate -1": New(-1, 1), "nil": nilL} {
		for i := 0; i < 1000; i++ {
			if _, _, ok := l.Take("k", SourceAPI); !ok {
				t.Fatalf("%s: take %d refused", name, i)
			}
		}
	}
}

// TestSet: a reload's new rate applies to existing buckets.
func TestSet(t *testing.T) {
	l, _ := newClocked(60, 1)
	l.Take("k", SourcePage)
	if _, _, ok := l.Take("k", SourcePage); ok {
		t.Fatal("past burst 1: allowed")
	}
	l.Set(-1, 1)
	if _, _, ok := l.Take("k", SourcePage); !ok {
		t.Fatal("limit off: refused")
	}
	l.Set(60, 1)
	l.Take("k", SourcePage)
	if _, _, ok := l.Take("k", SourcePage); ok {
		t.Fatal("limit back on: allowed past burst")
	}
}

// TestIdleEvicted: buckets idle for a refill period are forgotten, and
// the map never grows past MaxKeys however many keys come.
func TestIdleEvicted(t *testing.T) {
	l, c := newClocked(60, 2) // refills in 2 s
	l.MaxKeys = 1000
	for i := 0; i < 500; i++ {
		l.Take(fmt.Sprintf("k%d", i), SourcePage)
	}
	if got := l.Len(); got != 500 {
		t.Fatalf("Len: got %d, want 500", got)
	}
	c.add(2 * time.Second)
	l.Take("fresh", SourcePage)
	if got := l.Len(); got != 1 {
		t.Errorf("Len after a refill period: got %d, want 1 (idle buckets evicted)", got)
	}
	for i := 0; i < 5000; i++ {
		l.Take(fmt.Sprintf("flood%d", i), SourcePage)
		if got := l.Len(); got > l.MaxKeys {
			t.Fatalf("Len: got %d, past MaxKeys %d", got, l.MaxKeys)
		}
	}
}

// TestIPv6Prefix: with clientaddr keys, addresses in one /64 share a
// bucket; another /64 has its own.
func TestIPv6Prefix(t *testing.T) {
	l, _ := newClocked(1, 2)
	k := clientaddr.Keyer{IPv6Prefix: 64}
	key := func(s string) string { return k.Key(netip.MustParseAddr(s)).String() }
	for i, a := range []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"} {
		if _, _, ok := l.Take(key(a), SourceAPI); !ok {
			t.Fatalf("take %d from %s: refused within the burst", i+1, a)
		}
	}
	if _, _, ok := l.Take(key("2001:db8:1:2:abcd::1"), SourceAPI); ok {
		t.Error("third address in the same /64: allowed, want refused (one client)")
	}
	if _, _, ok := l.Take(key("2001:db8:1:3::1"), SourceAPI); !ok {
		t.Error("address in another /64: refused, want allowed")
	}
}
