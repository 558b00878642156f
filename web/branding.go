package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"html/template"
	"net/http"
	"time"
)

// LogoPath is where the operator's logo is served; 404 without one.
const LogoPath = "/branding/logo"

// DefaultName is the name the pages carry without an operator's own.
const DefaultName = "icebox"

// logoSVGCSP is the Content-Security-Policy of an SVG logo: opened on its
// own (not through the page's <img>, where no script ever runs) it is a
// document, and sandbox with default-src 'none' keeps any script in it
// from running and it from loading anything.
const logoSVGCSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"

// logoMaxAge is how long a browser keeps the logo under the versioned URL
// the pages name (LogoPath?v=<version>), in seconds; a new logo gets a new
// version, so a reload shows at once.
const logoMaxAge = "86400"

// Branding is the operator's name and logo on the landing page, the call
// page and /check (headers and <title>). Make one with NewBranding; nil
// is icebox's own name and no logo.
type Branding struct {
	name     string
	logo     []byte
	logoType string
	// version names the logo's content: the first 16 hex digits of its
	// SHA-256, its ETag and the v= of its URL.
	version string
}

// NewBranding returns the branding of name ("" for DefaultName) and logo
// (nil for none), whose media type is logoType (image/png, image/jpeg,
// image/webp or image/svg+xml, sniffed by the caller; config.SniffLogo).
// The name is shown as text, escaped; logo is served as it is at LogoPath.
func NewBranding(name string, logo []byte, logoType string) *Branding {
	b := &Branding{name: name, logo: logo, logoType: logoType}
	if len(logo) > 0 {
		sum := sha256.Sum256(logo)
		b.version = hex.EncodeToString(sum[:8])
	}
	return b
}

// brandView is what the pages' templates show of the branding.
type brandView struct {
	// Name is the operator's name or DefaultName.
	Name string
	// Logo is the logo's URL; "" without one.
	Logo string
	// Custom is true with an operator's name or logo: the heading may then
	// give way in a crowded top bar (style.css); icebox's own does not.
	Custom bool
}

// branding returns the current branding, read per request so a reload
// applies; nil without one.
func (h *handler) branding() *Branding {
	if h.cfg.Branding == nil {
		return nil
	}
	return h.cfg.Branding()
}

func (h *handler) brandView() brandView {
	v := brandView{Name: DefaultName}
	if b := h.branding(); b != nil {
		if b.name != "" {
			v.Name, v.Custom = b.name, true
		}
		if len(b.logo) > 0 {
			v.Logo, v.Custom = LogoPath+"?v="+b.version, true
		}
	}
	return v
}

// brandHTML is the pages' top-bar heading: the logo, when there is one,
// beside the name. The logo is decorative (alt=""): the name says who.
const brandHTML = `{{define "brand"}}<h1 id="brand"{{if .Custom}} class="custom"{{end}}>` +
	`{{if .Logo}}<img id="brand-logo" src="{{.Logo}}" alt="">{{end}}` +
	`<span id="brand-name">{{.Name}}</span></h1>{{end}}`

// parsePage parses a page's template with the "brand" template beside it.
func parsePage(name, text string) *template.Template {
	return template.Must(template.Must(template.New(name).Parse(text)).Parse(brandHTML))
}

// logo serves the operator's logo, GET /branding/logo: its sniffed
// Content-Type, an ETag, and for SVG a sandbox CSP. 404 without one.
func (h *handler) logo(w http.ResponseWriter, r *http.Request) {
	b := h.branding()
	if b == nil || len(b.logo) == 0 {
		http.Error(w, "no logo is configured (branding.logo_file)", http.StatusNotFound)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", b.logoType)
	if b.logoType == "image/svg+xml" {
		hd.Set("Content-Security-Policy", logoSVGCSP)
	}
	hd.Set("ETag", `"`+b.version+`"`)
	if r.URL.Query().Get("v") == b.version {
		hd.Set("Cache-Control", "public, max-age="+logoMaxAge)
	} else {
		// Unversioned (or an older version): ask again each time.
		hd.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b.logo))
}
