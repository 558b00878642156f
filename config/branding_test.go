package config

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// webp1x1 is a 1×1 lossless WebP image.
var webp1x1 = []byte("RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00")

func encodeImage(t *testing.T, enc func(*bytes.Buffer, image.Image) error) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	img.Set(1, 1, color.RGBA{R: 200, A: 255})
	var b bytes.Buffer
	if err := enc(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBranding: a logo's type comes from its bytes, whatever its file is
// called, and the name is kept without surrounding white space.
func TestBranding(t *testing.T) {
	dir := t.TempDir()
	pngData := encodeImage(t, func(b *bytes.Buffer, m image.Image) error { return png.Encode(b, m) })
	jpegData := encodeImage(t, func(b *bytes.Buffer, m image.Image) error { return jpeg.Encode(b, m, nil) })
	svg := `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle cx="5" cy="5" r="4"/></svg>`
	tests := []struct {
		name, file string
		data       []byte
		want       string
	}{
		{"png", "logo.png", pngData, LogoPNG},
		{"jpeg", "logo.jpg", jpegData, LogoJPEG},
		{"webp", "logo.webp", webp1x1, LogoWebP},
		{"svg", "logo.svg", []byte(svg), LogoSVG},
		{"svg with declaration, doctype, comment and BOM", "logo.svg", []byte("\xef\xbb\xbf<?xml version=\"1.0\"?>\n" +
			`<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">` +
			"\n<!-- made by hand -->\n" + svg + "\n"), LogoSVG},
		{"png named .svg", "png.svg", pngData, LogoPNG},
		{"svg named .png", "svg.png", []byte(svg), LogoSVG},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, dir, tt.file, tt.data)
			cfg, err := FromBytes("icebox.yaml", []byte("branding:\n  name: \"  Acme Calls \"\n  logo_file: "+path+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			b := cfg.Parsed.Branding
			if b.Name != "Acme Calls" || b.LogoType != tt.want || !bytes.Equal(b.Logo, tt.data) {
				t.Errorf("got name %q type %q %d bytes, want %q %q %d bytes", b.Name, b.LogoType, len(b.Logo), "Acme Calls", tt.want, len(tt.data))
			}
		})
	}
	t.Run("absent", func(t *testing.T) {
		cfg, err := FromBytes("icebox.yaml", nil)
		if err != nil {
			t.Fatal(err)
		}
		if b := cfg.Parsed.Branding; b.Name != "" || b.Logo != nil || b.LogoType != "" {
			t.Errorf("got %+v, want no branding", b)
		}
	})
	t.Run("a name of 64 characters of two bytes each", func(t *testing.T) {
		cfg, err := FromBytes("icebox.yaml", []byte("branding: {name: "+strings.Repeat("é", 64)+"}"))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Parsed.Branding.Name; got != strings.Repeat("é", 64) {
			t.Errorf("got %q", got)
		}
	})
}

// TestBrandingErrors: each bad name or logo file is refused with the key,
// its line and the reason.
func TestBrandingErrors(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.png")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	gif := writeFile(t, dir, "logo.gif", []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"))
	big := writeFile(t, dir, "big.png", append(encodeImage(t, func(b *bytes.Buffer, m image.Image) error { return png.Encode(b, m) }),
		make([]byte, MaxLogoSize)...))
	empty := writeFile(t, dir, "empty.svg", nil)
	noNS := writeFile(t, dir, "nons.svg", []byte(`<svg viewBox="0 0 1 1"/>`))
	broken := writeFile(t, dir, "broken.svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><g></svg>`))
	html := writeFile(t, dir, "page.svg", []byte(`<html><body><script>alert(1)</script><svg xmlns="http://www.w3.org/2000/svg"/></body></html>`))
	text := writeFile(t, dir, "logo.txt", []byte("just words"))
	tests := []struct {
		name, yml, key, reason string
		line                   int
	}{
		{"name too long", "branding:\n  name: " + strings.Repeat("é", 65), "branding.name", "65 characters; at most 64", 2},
		{"name with a line break", "branding:\n  name: \"Acme\\nCalls\"", "branding.name", "U+000A, a control", 2},
		{"name with a bell", "branding:\n  name: \"Acme\\aCalls\"", "branding.name", "U+0007, a control", 2},
		{"name with a right-to-left override", "branding:\n  name: \"Acme\u202eslla\"", "branding.name", "U+202E", 2},
		{"name of white space", "branding:\n  name: \"   \"", "branding.name", "only white space", 2},
		{"logo missing", "branding:\n  logo_file: " + filepath.Join(dir, "none.png"), "branding.logo_file", "none.png does not exist", 2},
		{"logo a directory", "branding:\n  logo_file: " + dir, "branding.logo_file", "not a regular file", 2},
		{"logo a FIFO", "branding:\n  logo_file: " + fifo, "branding.logo_file", "not a regular file", 2},
		{"logo too large", "branding:\n\n  logo_file: " + big, "branding.logo_file", "at most 262144 (256 KiB)", 3},
		{"logo empty", "branding:\n  logo_file: " + empty, "branding.logo_file", "is empty", 2},
		{"logo a GIF", "branding:\n  logo_file: " + gif, "branding.logo_file", "content is image/gif, not a PNG, JPEG, WebP or SVG", 2},
		{"svg without its namespace", "branding:\n  logo_file: " + noNS, "branding.logo_file", `root element is <svg>, not <svg xmlns="http://www.w3.org/2000/svg">`, 2},
		{"svg not well-formed", "branding:\n  logo_file: " + broken, "branding.logo_file", "not well-formed XML", 2},
		{"html named .svg", "branding:\n  logo_file: " + html, "branding.logo_file", "root element is <html>", 2},
		{"plain text", "branding:\n  logo_file: " + text, "branding.logo_file", "not a PNG, JPEG, WebP or SVG image", 2},
		{"unknown key", "branding:\n  logo: x.png", "branding.logo", "unknown key (known keys: name, logo_file)", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromBytes("icebox.yaml", []byte(tt.yml))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *config.Error", err)
			}
			if ce.Key != tt.key || !strings.Contains(ce.Reason, tt.reason) || ce.Line != tt.line {
				t.Errorf("got %v (key %q line %d), want key %q line %d reason containing %q", err, ce.Key, ce.Line, tt.key, tt.line, tt.reason)
			}
		})
	}
}
