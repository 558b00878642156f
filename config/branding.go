package config

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds of the branding: section.
const (
	// MaxBrandNameLength bounds branding.name, in characters (runes).
	MaxBrandNameLength = 64
	// MaxLogoSize bounds branding.logo_file: 256 KiB.
	MaxLogoSize = 256 << 10
)

// Logo media types, sniffed from a logo file's bytes (never its name).
const (
	LogoPNG  = "image/png"
	LogoJPEG = "image/jpeg"
	LogoWebP = "image/webp"
	LogoSVG  = "image/svg+xml"
)

// svgNamespace is the namespace an SVG document's root element must be
// in for a browser to draw it from an <img> (SVG 2 §1.3).
const svgNamespace = "http://www.w3.org/2000/svg"

// Branding is the operator's name and logo, shown on the landing page,
// the call page and /check (their header and <title>). Absent: icebox's
// own wording and no logo.
type Branding struct {
	// Name replaces "icebox" in the pages' headers and titles, HTML-escaped:
	// at most 64 characters, no control or bidirectional formatting
	// characters; surrounding white space is dropped. Default "" (icebox).
	Name string `yaml:"name"`
	// LogoFile is a PNG, JPEG, WebP or SVG file of at most 256 KiB, read
	// when the configuration is loaded (at start and on SIGHUP) and served
	// at /branding/logo. Its type is sniffed from its content; an SVG must
	// be a well-formed XML document whose root is <svg
	// xmlns="http://www.w3.org/2000/svg">. Default "": no logo.
	LogoFile string `yaml:"logo_file"`
}

// ParsedBranding is branding: checked, with the logo read.
type ParsedBranding struct {
	// Name is branding.name without surrounding white space; "" for
	// icebox's own.
	Name string
	// Logo is the content of branding.logo_file; nil without one.
	Logo []byte
	// LogoType is Logo's media type: LogoPNG, LogoJPEG, LogoWebP or
	// LogoSVG; "" without a logo.
	LogoType string
}

// validateBranding checks branding: and reads the logo.
func (c *Config) validateBranding(p *Parsed) *Error {
	b := c.Branding
	name := strings.TrimSpace(b.Name)
	if !utf8.ValidString(name) {
		return bad("branding.name", "is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(name); n > MaxBrandNameLength {
		return bad("branding.name", "%d characters; at most %d", n, MaxBrandNameLength)
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return bad("branding.name", "contains %U, a control or bidirectional formatting character; the name is shown as one line of plain text", r)
		}
	}
	if b.Name != "" && name == "" {
		return bad("branding.name", "is only white space; leave it out for icebox's own name")
	}
	p.Branding.Name = name
	if b.LogoFile == "" {
		return nil
	}
	logo, typ, err := readLogo(b.LogoFile)
	if err != nil {
		return bad("branding.logo_file", "%v", err)
	}
	p.Branding.Logo, p.Branding.LogoType = logo, typ
	return nil
}

// readLogo reads a logo file and sniffs its media type. Errors name the
// file and say why it will not do.
func readLogo(path string) ([]byte, string, error) {
	// Stat before opening: opening a FIFO would block until a writer came.
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("%s does not exist", path)
	}
	if err != nil {
		return nil, "", err
	}
	if !fi.Mode().IsRegular() {
		return nil, "", fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	if fi.Size() > MaxLogoSize {
		return nil, "", fmt.Errorf("%s is %d bytes; a logo may be at most %d (256 KiB)", path, fi.Size(), MaxLogoSize)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxLogoSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > MaxLogoSize { // it grew since the Stat
		return nil, "", fmt.Errorf("%s is more than %d bytes; a logo may be at most %d (256 KiB)", path, MaxLogoSize, MaxLogoSize)
	}
	if len(data) == 0 {
		return nil, "", fmt.Errorf("%s is empty", path)
	}
	typ, err := SniffLogo(data)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	return data, typ, nil
}

// SniffLogo returns the media type of a logo from its bytes: LogoPNG,
// LogoJPEG or LogoWebP by their signatures (the WHATWG MIME Sniffing
// Standard §6.1, as net/http.DetectContentType implements it), or LogoSVG
// for a well-formed XML document whose root element is svg in the SVG
// namespace. Anything else is an error saying what the bytes look like.
func SniffLogo(data []byte) (string, error) {
	detected := http.DetectContentType(data)
	switch detected {
	case LogoPNG, LogoJPEG, LogoWebP:
		return detected, nil
	}
	svgErr := checkSVG(data)
	if svgErr == nil {
		return LogoSVG, nil
	}
	if strings.HasPrefix(detected, "text/") {
		// Text that is not an SVG: say why, it was probably meant as one.
		return "", fmt.Errorf("not a PNG, JPEG, WebP or SVG image (as SVG: %v)", svgErr)
	}
	return "", fmt.Errorf("its content is %s, not a PNG, JPEG, WebP or SVG image", strings.Split(detected, ";")[0])
}

// checkSVG reports whether data is a well-formed XML document whose root
// element is <svg> in the SVG namespace, which is what a browser draws
// from an <img>.
func checkSVG(data []byte) error {
	dec := xml.NewDecoder(bytes.NewReader(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))))
	root := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if !root {
				return errors.New("no root element")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("not well-formed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if !root {
				if t.Name.Local != "svg" || t.Name.Space != svgNamespace {
					return fmt.Errorf("the root element is <%s>, not <svg xmlns=%q>", t.Name.Local, svgNamespace)
				}
				root = true
			}
		case xml.CharData:
			if !root && len(bytes.TrimSpace(t)) > 0 {
				return errors.New("text before the root element")
			}
		}
	}
}
