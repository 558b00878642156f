package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds the configuration file icebox reads: 1 MiB.
const MaxFileSize = 1 << 20

// Error is a configuration error naming the file, the key (a dotted path
// such as "turn.relay_ports") and the reason. Line is 0 when unknown.
type Error struct {
	File   string
	Line   int
	Key    string
	Reason string
	// alt is the same error said from another key (a clash between two
	// listeners), used when Key is not in the file but alt's key is.
	alt *Error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Load reads and validates the configuration. An empty path means no file:
// the defaults. A named file that does not exist is an error. Errors are
// *Error values naming file, key and reason.
func Load(path string) (*Config, error) {
	if path == "" {
		return FromBytes("", nil)
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &Error{File: path, Reason: "file does not exist"}
		}
		return nil, &Error{File: path, Reason: err.Error()}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &Error{File: path, Reason: err.Error()}
	}
	if len(data) > MaxFileSize {
		return nil, &Error{File: path, Reason: fmt.Sprintf("file is larger than %d bytes", MaxFileSize)}
	}
	return FromBytes(path, data)
}

// FromBytes parses and validates YAML data, filling Config.Parsed; name is
// used in errors.
func FromBytes(name string, data []byte) (*Config, error) {
	cfg := &Config{}
	lines := map[string]int{}
	if len(bytes.TrimSpace(data)) > 0 {
		var root yaml.Node
		dec := yaml.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
			return nil, &Error{File: name, Reason: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
		}
		if len(root.Content) > 0 {
			doc := root.Content[0]
			if doc.Kind != yaml.MappingNode && !(doc.Kind == yaml.ScalarNode && doc.Tag == "!!null") {
				return nil, &Error{File: name, Line: doc.Line, Reason: "the top level must be a mapping of keys"}
			}
			if err := checkKeys(doc, reflect.TypeOf(*cfg), "", lines); err != nil {
				err.File = name
				return nil, err
			}
			if err := doc.Decode(cfg); err != nil {
				return nil, typeError(name, err, lines)
			}
		}
	}
	cfg.applyDefaults()
	parsed, verr := cfg.validate()
	if verr != nil {
		if _, ok := lines[verr.Key]; !ok && verr.alt != nil && lines[verr.alt.Key] > 0 {
			verr = verr.alt
		}
		verr.File = name
		if verr.Line == 0 {
			verr.Line = lines[verr.Key]
		}
		return nil, verr
	}
	cfg.Parsed = *parsed
	return cfg, nil
}

// checkKeys walks a mapping node against the struct type t, rejecting keys
// the struct has no field for, and records each key's line.
func checkKeys(n *yaml.Node, t reflect.Type, prefix string, lines map[string]int) *Error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return nil
			}
			return &Error{Line: n.Line, Key: prefix, Reason: "must be a mapping of keys"}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := join(prefix, k.Value)
			f, ok := fieldByTag(t, k.Value)
			if !ok {
				return &Error{Line: k.Line, Key: key, Reason: "unknown key" + knownKeys(t)}
			}
			lines[key] = k.Line
			if err := checkKeys(v, f.Type, key, lines); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return nil
			}
			return &Error{Line: n.Line, Key: prefix, Reason: "must be a mapping"}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := join(prefix, k.Value)
			lines[key] = k.Line
			if err := checkKeys(v, t.Elem(), key, lines); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for i, item := range n.Content {
				key := fmt.Sprintf("%s[%d]", prefix, i)
				lines[key] = item.Line
				if err := checkKeys(item, t.Elem(), key, lines); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag := strings.Split(f.Tag.Get("yaml"), ",")[0]; tag == name && tag != "-" {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// knownKeys names the keys t accepts, to help with a typo.
func knownKeys(t reflect.Type) string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if n := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; n != "" && n != "-" {
			names = append(names, n)
		}
	}
	return " (known keys: " + strings.Join(names, ", ") + ")"
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// typeError turns a yaml.v3 type error ("line 3: cannot unmarshal !!str
// `x` into int") into an *Error naming the key on that line.
func typeError(name string, err error, lines map[string]int) *Error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg := te.Errors[0]
		var line int
		if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr == nil {
			msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
			key := ""
			for k, l := range lines {
				if l == line && (key == "" || len(k) > len(key)) {
					key = k
				}
			}
			return &Error{File: name, Line: line, Key: key, Reason: "wrong type: " + msg}
		}
		return &Error{File: name, Reason: "wrong type: " + msg}
	}
	return &Error{File: name, Reason: err.Error()}
}
