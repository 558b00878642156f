package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// version and commit are set at build time with -ldflags "-X main.version=…
// -X main.commit=…" (the Makefile passes `git describe` and the commit
// hash). Without them: "dev", and the commit Go stamped from the checkout
// (vcs.revision), if it did.
var (
	version = "dev"
	commit  = ""
)

// reportedModules are the modules `icebox version` names, with the label
// it prints for each.
var reportedModules = []struct{ label, path string }{
	{"pion/turn", "github.com/pion/turn/v4"},
	{"nats-server", "github.com/nats-io/nats-server/v2"},
}

// buildInfo is what `icebox version` prints, read from the binary's
// embedded build information (runtime/debug.ReadBuildInfo).
type buildInfo struct {
	Version  string            // -X main.version, or "dev"
	Commit   string            // -X main.commit, else vcs.revision; "" when neither
	Time     string            // vcs.time, RFC 3339, the commit's time
	Modified bool              // vcs.modified: built from a tree with uncommitted changes
	Go       string            // the toolchain, e.g. "go1.26.8"
	Modules  map[string]string // module path → version, for reportedModules
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Commit: commit, Modules: map[string]string{}}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Go = bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if b.Commit == "" {
				b.Commit = s.Value
			}
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	for _, m := range bi.Deps {
		if m.Replace != nil {
			m = m.Replace
		}
		for _, r := range reportedModules {
			if m.Path == r.path {
				b.Modules[r.path] = m.Version
			}
		}
	}
	return b
}

// versionString is the version alone, for the start-up log line: the
// -X main.version value, else "dev-<commit>" for a build from a checkout.
func versionString() string {
	b := readBuildInfo()
	if b.Version != "dev" || len(b.Commit) < 12 {
		return b.Version
	}
	return "dev-" + b.Commit[:12]
}

// printVersion writes `icebox version`: the version on the first line,
// then one "key value" line each for the commit, the Go toolchain and
// reportedModules.
func printVersion(w io.Writer) {
	b := readBuildInfo()
	fmt.Fprintln(w, "icebox", versionString())
	commit := b.Commit
	if commit == "" {
		commit = "unknown"
	}
	if b.Time != "" {
		commit += " (" + b.Time + ")"
	}
	if b.Modified {
		commit += " with uncommitted changes"
	}
	fmt.Fprintf(w, "commit       %s\n", commit)
	fmt.Fprintf(w, "go           %s\n", b.Go)
	for _, r := range reportedModules {
		v := b.Modules[r.path]
		if v == "" {
			v = "not linked"
		}
		fmt.Fprintf(w, "%-12s %s\n", r.label, v)
	}
}
