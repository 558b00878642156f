package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icebox-project/icebox/config"
)

// TestBrandingReload: the logo read at start is served at /branding/logo
// and the name is on the landing page; a reload with another name and
// logo file serves the new ones, and one without branding: goes back to
// icebox's own name and a 404.
func TestBrandingReload(t *testing.T) {
	dir := t.TempDir()
	svg1 := []byte(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 2 1"><rect width="2" height="1"/></svg>`)
	svg2 := []byte(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><circle cx=".5" cy=".5" r=".5"/></svg>`)
	for name, data := range map[string][]byte{"one.svg": svg1, "two.svg": svg2} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base := fmt.Sprintf(`public_ip: 127.0.0.1
http:
  listen: "127.0.0.1:0"
turn:
  listen: ["udp://127.0.0.1:0"]
metrics:
  listen: ""
state_dir: %q
`, t.TempDir())
	load := func(branding string) *config.Config {
		t.Helper()
		cfg, err := config.FromBytes("branding.yaml", []byte(base+branding))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	d := serve(t, load("branding: {name: One, logo_file: "+filepath.Join(dir, "one.svg")+"}\n"), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	url := "http://" + d.HTTPAddr().String()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	expect := func(name string, logo []byte) {
		t.Helper()
		if _, page := get("/"); !strings.Contains(page, "<title>"+name+" · ") {
			t.Errorf("the landing page does not carry %q", name)
		}
		code, body := get("/branding/logo")
		if logo == nil && code != http.StatusNotFound || logo != nil && (code != http.StatusOK || body != string(logo)) {
			t.Errorf("logo: got %d, %d bytes; want %d bytes (none: 404)", code, len(body), len(logo))
		}
	}
	expect("One", svg1)
	if _, err := d.Reload(load("branding: {name: Two, logo_file: " + filepath.Join(dir, "two.svg") + "}\n")); err != nil {
		t.Fatal(err)
	}
	expect("Two", svg2)
	if _, err := d.Reload(load("")); err != nil {
		t.Fatal(err)
	}
	expect("icebox", nil)
}
