package web

import (
	"bytes"
	"image"
	"image/png"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
)

func pngLogo(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewRGBA(image.Rect(0, 0, 8, 4))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// scriptSVG is an SVG that runs script when opened as a document.
const scriptSVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10" onload="alert(1)">` +
	`<script>alert(document.cookie)</script><circle cx="5" cy="5" r="4"/></svg>`

var pages = []string{"/", "/r/room1", "/check"}

// TestBrandingAbsent: without branding the pages carry icebox's name as
// before, no logo, and /branding/logo is 404.
func TestBrandingAbsent(t *testing.T) {
	for _, mod := range []func(*Config){
		func(*Config) {},
		func(c *Config) { c.Branding = func() *Branding { return nil } },
	} {
		s := startWeb(t, nil, mod)
		for _, p := range pages {
			resp, body := get(t, s.URL+p)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: got %d", p, resp.StatusCode)
			}
			if !strings.Contains(body, "<title>icebox · ") || !strings.Contains(body, `<h1 id="brand"><span id="brand-name">icebox</span></h1>`) {
				t.Errorf("%s: got no icebox title and heading in\n%s", p, body)
			}
			if strings.Contains(body, "<img") {
				t.Errorf("%s: an <img> without a logo", p)
			}
		}
		resp, body := get(t, s.URL+LogoPath)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "branding.logo_file") {
			t.Errorf("logo without one: got %d %q, want 404", resp.StatusCode, body)
		}
	}
}

// TestBrandingPages: the name is in each page's <title> and heading,
// HTML-escaped, the logo only as an <img> of LogoPath with its version,
// and the page's Content-Security-Policy is the same as without.
func TestBrandingPages(t *testing.T) {
	plain := startWeb(t, nil)
	const name = `Acme <script>alert(1)</script> & "Co"`
	const escaped = `Acme &lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;Co&#34;`
	b := NewBranding(name, pngLogo(t), "image/png")
	s := startWeb(t, nil, func(c *Config) { c.Branding = func() *Branding { return b } })
	img := regexp.MustCompile(`<img id="brand-logo" src="/branding/logo\?v=([0-9a-f]{16})" alt="">`)
	for _, p := range pages {
		resp, body := get(t, s.URL+p)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: got %d", p, resp.StatusCode)
		}
		if strings.Contains(body, "<script>alert") {
			t.Errorf("%s: the name is not escaped:\n%s", p, body)
		}
		if !strings.Contains(body, "<title>"+escaped+" · ") {
			t.Errorf("%s: no escaped name in <title>:\n%s", p, body)
		}
		m := img.FindStringSubmatch(body)
		if m == nil || m[1] != b.version {
			t.Errorf("%s: got logo %v, want an <img> of version %s", p, m, b.version)
		}
		if !strings.Contains(body, `<h1 id="brand" class="custom"><img id="brand-logo" `) || !strings.Contains(body, `alt=""><span id="brand-name">`+escaped+`</span></h1>`) {
			t.Errorf("%s: no escaped name beside the logo in the heading:\n%s", p, body)
		}
		plainResp, _ := get(t, plain.URL+p)
		if got, want := resp.Header.Get("Content-Security-Policy"), plainResp.Header.Get("Content-Security-Policy"); got != want || want == "" {
			t.Errorf("%s: CSP %q with branding, %q without", p, got, want)
		}
	}
}

// TestBrandingLogo: the logo is served with its sniffed Content-Type,
// nosniff, an ETag and a cache header (long only under its current
// version); an SVG, even one that carries script, gets a sandbox CSP that
// runs none of it, and a raster image keeps the site's CSP. A reload that
// changes the logo is served at once.
func TestBrandingLogo(t *testing.T) {
	pngData := pngLogo(t)
	var cur atomic.Pointer[Branding]
	cur.Store(NewBranding("", pngData, "image/png"))
	s := startWeb(t, nil, func(c *Config) { c.Branding = cur.Load })

	check := func(path, wantType, wantCache string, want []byte) *http.Response {
		t.Helper()
		resp, body := get(t, s.URL+path)
		if resp.StatusCode != http.StatusOK || body != string(want) {
			t.Fatalf("GET %s: got %d, %d bytes; want 200, %d bytes", path, resp.StatusCode, len(body), len(want))
		}
		h := resp.Header
		if h.Get("Content-Type") != wantType || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cache-Control") != wantCache {
			t.Errorf("GET %s: got type %q nosniff %q cache %q; want %q nosniff %q", path,
				h.Get("Content-Type"), h.Get("X-Content-Type-Options"), h.Get("Cache-Control"), wantType, wantCache)
		}
		return resp
	}
	v := cur.Load().version
	resp := check(LogoPath+"?v="+v, "image/png", "public, max-age=86400", pngData)
	if csp := resp.Header.Get("Content-Security-Policy"); strings.Contains(csp, "sandbox") || !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("png: got CSP %q, want the site's", csp)
	}
	check(LogoPath, "image/png", "no-cache", pngData)
	etag := resp.Header.Get("ETag")
	if etag != `"`+v+`"` {
		t.Errorf("got ETag %q, want %q", etag, v)
	}
	if r, _ := get(t, s.URL+LogoPath, "If-None-Match", etag); r.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: got %d, want 304", r.StatusCode)
	}

	// A reload: the new logo, under a new version; the old URL is no
	// longer cached for long.
	cur.Store(NewBranding("Acme", []byte(scriptSVG), "image/svg+xml"))
	nv := cur.Load().version
	if nv == v {
		t.Fatal("a new logo kept the old version")
	}
	check(LogoPath+"?v="+v, "image/svg+xml", "no-cache", []byte(scriptSVG))
	resp = check(LogoPath+"?v="+nv, "image/svg+xml", "public, max-age=86400", []byte(scriptSVG))
	if csp := resp.Header.Get("Content-Security-Policy"); csp != logoSVGCSP {
		t.Errorf("svg: got CSP %q, want %q", csp, logoSVGCSP)
	}
	// The policy itself: a sandbox without allow-scripts, nothing loaded.
	csp := resp.Header.Get("Content-Security-Policy")
	if !regexp.MustCompile(`(^|; )sandbox($|;)`).MatchString(csp) || !strings.Contains(csp, "default-src 'none'") ||
		strings.Contains(csp, "script-src") || strings.Contains(csp, "allow-scripts") {
		t.Errorf("svg CSP %q does not keep scripts from running", csp)
	}
	if _, body := get(t, s.URL+"/"); !strings.Contains(body, LogoPath+"?v="+nv) {
		t.Errorf("the landing page does not name the new logo's version %s", nv)
	}
}
