// Package systemd_test checks the release artifacts `make dist` builds
// from this folder's unit, sysusers and sysctl entries and package/ (the
// nfpm configuration and the Debian maintainer scripts), and the .deb's
// install, upgrade, remove and purge on a Debian root.
package systemd_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/icebox-project/icebox/internal/testenv"
)

var arches = []string{"amd64", "arm64"}

// TestMain serves, with ICEBOX_DIST_PROBE set, as the page probe that
// debinstall.sh runs inside its network namespace.
func TestMain(m *testing.M) {
	if url := os.Getenv("ICEBOX_DIST_PROBE"); url != "" {
		if err := probePage(url); err != nil {
			fmt.Fprintln(os.Stderr, "probe:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	built.cleanup()
	os.Exit(code)
}

// probePage fetches base (the daemon listens already: debinstall.sh waits
// for its "http listening" line), follows the redirect to a room and
// checks the call page carries its ICE configuration.
func probePage(base string) error {
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(base)
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/r/") {
		return fmt.Errorf("GET %s: %d, Location %q; want 303 to /r/<room>", base, resp.StatusCode, loc)
	}
	resp, err = client.Get(strings.TrimSuffix(base, "/") + loc)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`<script id="ice-config" type="application/json">{"iceServers":[`)) {
		return fmt.Errorf("GET %s: %d, no ice-config in %d bytes", loc, resp.StatusCode, len(body))
	}
	return nil
}

// distBuild is one `make dist` shared by the tests of this package.
type distBuild struct {
	once    sync.Once
	tmp     string
	dir     string
	version string
	err     error
}

var built distBuild

func (b *distBuild) cleanup() {
	if b.tmp != "" {
		os.RemoveAll(b.tmp)
	}
}

// dist runs `make dist` once into a temporary folder and returns the
// folder and the version it stamped.
func dist(t *testing.T) (dir, version string) {
	t.Helper()
	testenv.Tool(t, "apt-get install make", "make")
	built.once.Do(func() {
		if built.tmp, built.err = os.MkdirTemp("", "icebox-dist"); built.err != nil {
			return
		}
		built.dir = filepath.Join(built.tmp, "dist")
		out, err := exec.Command("make", "-C", "..", "--no-print-directory", "dist", "DIST="+built.dir).CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("make dist: %v\n%s", err, out)
			return
		}
		built.version, built.err = makeVar("DIST_VERSION")
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.dir, built.version
}

// makeVar is the value the Makefile gives a variable.
func makeVar(name string) (string, error) {
	out, err := exec.Command("make", "-C", "..", "--no-print-directory", "-s", "--eval", "print-var: ; @echo $("+name+")", "print-var").Output()
	if err != nil {
		return "", fmt.Errorf("make print-var %s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// TestDist checks what `make dist` builds: the files, their checksums,
// static binaries stamped with the version and commit, the SBOMs, and
// the .debs' control fields, maintainer scripts, conffiles and contents.
func TestDist(t *testing.T) {
	dir, v := dist(t)
	want := []string{"SHA256SUMS"}
	for _, a := range arches {
		want = append(want, "icebox_"+v+"-1_"+a+".deb", "icebox_"+v+"_linux_"+a, "icebox_"+v+"_linux_"+a+".sbom.cdx.json")
	}
	want = append(want, "icebox-"+v+"-1.aarch64.rpm", "icebox-"+v+"-1.x86_64.rpm")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("dist/ holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	t.Run("SHA256SUMS", func(t *testing.T) { checkSums(t, dir, got) })
	commit, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range arches {
		t.Run("binary "+a, func(t *testing.T) {
			checkBinary(t, filepath.Join(dir, "icebox_"+v+"_linux_"+a), a, v, strings.TrimSpace(string(commit)))
		})
		t.Run("SBOM "+a, func(t *testing.T) { checkSBOM(t, filepath.Join(dir, "icebox_"+v+"_linux_"+a+".sbom.cdx.json"), v) })
		t.Run("deb "+a, func(t *testing.T) { checkDeb(t, filepath.Join(dir, "icebox_"+v+"-1_"+a+".deb"), a, v) })
	}
	t.Run("rpm", func(t *testing.T) {
		for _, name := range []string{"icebox-" + v + "-1.aarch64.rpm", "icebox-" + v + "-1.x86_64.rpm"} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, []byte{0xed, 0xab, 0xee, 0xdb}) {
				t.Errorf("%s does not start with the RPM lead", name)
			}
		}
	})
	t.Run("lintian", func(t *testing.T) {
		lintian := testenv.Tool(t, "apt-get install lintian", "lintian")
		cmd := exec.Command(lintian, "--fail-on", "error", filepath.Join(dir, "icebox_"+v+"-1_amd64.deb"), filepath.Join(dir, "icebox_"+v+"-1_arm64.deb"))
		out, err := cmd.CombinedOutput()
		if err != nil || regexp.MustCompile(`(?m)^E: `).Match(out) {
			t.Errorf("lintian: %v\n%s", err, out)
		}
		t.Logf("lintian:\n%s", out)
	})
}

// checkSums: SHA256SUMS names every other file once, with its digest.
func checkSums(t *testing.T, dir string, files []string) {
	f, err := os.Open(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	listed := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || listed[name] {
			t.Fatalf("SHA256SUMS line %q: want one \"<sha256>  <name>\" a file", sc.Text())
		}
		listed[name] = true
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if d := sha256.Sum256(b); hex.EncodeToString(d[:]) != sum {
			t.Errorf("%s: SHA256SUMS says %s, the file's is %x", name, sum, d)
		}
	}
	for _, name := range files {
		if name != "SHA256SUMS" && !listed[name] {
			t.Errorf("SHA256SUMS does not list %s", name)
		}
	}
}

// checkBinary: a static ELF for arch (no interpreter, no dynamic
// section), built with -trimpath and an empty build id; for the host's
// architecture, `icebox version` names v and commit.
func checkBinary(t *testing.T, path, arch, v, commit string) {
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != machine {
		t.Errorf("machine %v, want %v", f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("not static: has a %v program header", p.Type)
		}
	}
	if id, err := exec.Command("go", "tool", "buildid", path).Output(); err != nil || len(bytes.TrimSpace(id)) > 0 {
		t.Errorf("go tool buildid: %q (%v), want empty", id, err)
	}
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["-trimpath"] != "true" || settings["CGO_ENABLED"] != "0" {
		t.Errorf("build settings: -trimpath=%q CGO_ENABLED=%q", settings["-trimpath"], settings["CGO_ENABLED"])
	}
	if arch != runtime.GOARCH {
		return
	}
	out, err := exec.Command(path, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"icebox " + v + "\n", "\ncommit       " + commit + "\n", "\npion/turn    v4.", "\nnats-server  v2."} {
		if !strings.Contains(string(out), want) {
			t.Errorf("icebox version lacks %q:\n%s", want, out)
		}
	}
}

// checkSBOM: a CycloneDX document for icebox v that lists pion/turn v4
// and nats-server with the versions linked in.
func checkSBOM(t *testing.T, path, v string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		BOMFormat string `json:"bomFormat"`
		Metadata  struct {
			Component struct{ Name, Version string }
		}
		Components []struct{ Name, Version, Purl string }
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.BOMFormat != "CycloneDX" || doc.Metadata.Component.Name != "github.com/icebox-project/icebox" || doc.Metadata.Component.Version != "v"+v {
		t.Errorf("bomFormat %q, component %s %s", doc.BOMFormat, doc.Metadata.Component.Name, doc.Metadata.Component.Version)
	}
	found := map[string]string{}
	for _, c := range doc.Components {
		found[c.Name] = c.Version
	}
	for name, prefix := range map[string]string{"github.com/pion/turn/v4": "v4.", "github.com/nats-io/nats-server/v2": "v2.", "github.com/pion/stun/v3": "v3."} {
		if !strings.HasPrefix(found[name], prefix) {
			t.Errorf("SBOM lists %s at %q, want %s…", name, found[name], prefix)
		}
	}
}

// debFile is one entry of a .deb's data archive.
type debFile struct {
	mode        os.FileMode
	owner, data string
}

// checkDeb reads the package with dpkg-deb: control fields, the
// maintainer scripts and conffiles, and every file with its mode.
func checkDeb(t *testing.T, path, arch, v string) {
	testenv.Tool(t, "apt-get install dpkg", "dpkg-deb")
	fields := map[string]string{"Package": "icebox", "Version": v + "-1", "Architecture": arch,
		"Depends": "adduser, procps, init-system-helpers (>= 1.54~)", "Section": "net", "Priority": "optional"}
	for name, want := range fields {
		out, err := exec.Command("dpkg-deb", "-f", path, name).Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != want {
			t.Errorf("control %s: %q (%v), want %q", name, got, err, want)
		}
	}
	info, err := exec.Command("dpkg-deb", "-I", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{`(?m)^ +\d+ bytes, +1 lines +conffiles`, `(?m)^ +\d+ bytes, +\d+ lines +\* +postinst +#!/bin/sh$`,
		`(?m)^ +\d+ bytes, +\d+ lines +\* +prerm +#!/bin/sh$`, `(?m)^ +\d+ bytes, +\d+ lines +\* +postrm +#!/bin/sh$`} {
		if !regexp.MustCompile(re).Match(info) {
			t.Errorf("dpkg-deb -I does not match %s:\n%s", re, info)
		}
	}
	for name, src := range map[string]string{"conffiles": "", "postinst": "package/postinst", "prerm": "package/prerm", "postrm": "package/postrm"} {
		got, err := exec.Command("dpkg-deb", "-I", path, name).Output()
		if err != nil {
			t.Fatalf("dpkg-deb -I %s: %v", name, err)
		}
		want := []byte("/etc/icebox/icebox.yaml\n")
		if src != "" {
			if want, err = os.ReadFile(src); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, want) {
			t.Errorf("the package's %s differs from %s:\n%s", name, src, got)
		}
	}

	files := debContents(t, path)
	wantFiles := map[string]struct {
		mode os.FileMode
		src  string
	}{
		"./usr/bin/icebox":                           {0o755, ""},
		"./lib/systemd/system/icebox.service":        {0o644, ""},
		"./usr/lib/sysusers.d/icebox.conf":           {0o644, "icebox.sysusers"},
		"./usr/lib/sysctl.d/60-icebox.conf":          {0o644, "icebox.sysctl"},
		"./etc/icebox/icebox.yaml":                   {0o640, "../docs/icebox.example.yaml"},
		"./usr/share/man/man8/icebox.8.gz":           {0o644, ""},
		"./usr/share/doc/icebox/copyright":           {0o644, "package/copyright"},
		"./usr/share/doc/icebox/changelog.Debian.gz": {0o644, ""},
		"./usr/share/lintian/overrides/icebox":       {0o644, "package/lintian-overrides"},
	}
	for name, w := range wantFiles {
		f, ok := files[name]
		if !ok {
			t.Errorf("the package lacks %s", name)
			continue
		}
		if f.mode != w.mode || (f.owner != "root:root" && f.owner != "0:0") {
			t.Errorf("%s: %04o %s, want %04o root:root", name, f.mode, f.owner, w.mode)
		}
		if w.src != "" {
			if b, err := os.ReadFile(w.src); err != nil || string(b) != f.data {
				t.Errorf("%s is not %s (%v)", name, w.src, err)
			}
		}
	}
	for name, f := range files {
		if _, ok := wantFiles[name]; !ok && f.mode&os.ModeDir == 0 {
			t.Errorf("the package holds %s, which no one asked for", name)
		}
	}
	unit := files["./lib/systemd/system/icebox.service"].data
	for _, line := range []string{"ExecStart=/usr/bin/icebox -config /etc/icebox/icebox.yaml", "User=icebox", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + `$`).MatchString(unit) {
			t.Errorf("the packaged unit lacks %q", line)
		}
	}
}

// debContents reads `dpkg-deb --fsys-tarfile`: path → mode, owner and,
// for small regular files, contents.
func debContents(t *testing.T, path string) map[string]debFile {
	cmd := exec.Command("dpkg-deb", "--fsys-tarfile", path)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]debFile{}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		f := debFile{mode: h.FileInfo().Mode() & (os.ModePerm | os.ModeDir), owner: h.Uname + ":" + h.Gname}
		if h.Uname == "" {
			f.owner = fmt.Sprintf("%d:%d", h.Uid, h.Gid)
		}
		if h.Typeflag == tar.TypeReg && h.Size < 1<<20 {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			f.data = string(b)
		}
		files[h.Name] = f
	}
	return files
}

// TestDistSign signs a SHA256SUMS with `make dist-sign` and a throwaway
// key, and verifies it the way README's "Verify a download" says: gpgv
// accepts it, and refuses it once the file changes.
func TestDistSign(t *testing.T) {
	gpg := testenv.Tool(t, "apt-get install gnupg", "gpg")
	gpgv := testenv.Tool(t, "apt-get install gpgv", "gpgv")
	testenv.Tool(t, "apt-get install make", "make")
	tmp := t.TempDir()
	home := filepath.Join(tmp, "gnupg")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return out
	}
	run(gpg, "--batch", "--passphrase", "", "--quick-gen-key", "icebox release test <release@icebox.invalid>", "ed25519", "sign", "never")
	sums := filepath.Join(tmp, "SHA256SUMS")
	if err := os.WriteFile(sums, []byte("0000000000000000000000000000000000000000000000000000000000000000  icebox_1.0.0-1_amd64.deb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("make", "-C", "..", "--no-print-directory", "dist-sign", "DIST="+tmp, "SIGN_KEY=release@icebox.invalid")
	key := filepath.Join(tmp, "icebox-release.asc")
	if err := os.WriteFile(key, run(gpg, "--armor", "--export", "release@icebox.invalid"), 0o644); err != nil {
		t.Fatal(err)
	}
	keyring := filepath.Join(tmp, "icebox-release.gpg")
	if err := os.WriteFile(keyring, run(gpg, "--dearmor", "--output", "-", key), 0o644); err != nil {
		t.Fatal(err)
	}
	run(gpgv, "--keyring", keyring, filepath.Join(tmp, "SHA256SUMS.asc"), sums)
	if err := os.WriteFile(sums, []byte("1111111111111111111111111111111111111111111111111111111111111111  icebox_1.0.0-1_amd64.deb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gpgv, "--keyring", keyring, filepath.Join(tmp, "SHA256SUMS.asc"), sums).CombinedOutput(); err == nil {
		t.Errorf("gpgv accepted a changed SHA256SUMS:\n%s", out)
	}
}

// TestDebInstall installs the host architecture's .deb on a Debian root,
// runs it as the unit would, upgrades it to a newer version, removes and
// purges it (systemd/testdata/debinstall.sh says how and checks what).
// The root is an overlay of ICEBOX_DEBROOT (`make dist-install-test`
// debootstraps a clean Debian 12 there) or, without it, of this machine's
// own root, which CI's Debian 12 is; nothing is written to either.
func TestDebInstall(t *testing.T) {
	testenv.Require(t, os.Geteuid() == 0, "needs root for mount and network namespaces")
	for _, tool := range []string{"unshare", "chroot", "setpriv", "mount"} {
		testenv.Tool(t, "apt-get install util-linux coreutils", tool)
	}
	testenv.Tool(t, "apt-get install iproute2", "ip")
	lower := os.Getenv("ICEBOX_DEBROOT")
	if lower == "" {
		lower = "/"
	}
	for _, p := range []string{"etc/debian_version", "usr/bin/apt-get", "usr/bin/deb-systemd-helper", "usr/sbin/adduser", "usr/bin/setpriv"} {
		_, err := os.Stat(filepath.Join(lower, p))
		testenv.Require(t, err == nil, "the root "+lower+" is not a Debian with apt, adduser, init-system-helpers and util-linux ("+p+")")
	}
	dir, v := dist(t)
	deb := filepath.Join(dir, "icebox_"+v+"-1_"+runtime.GOARCH+".deb")
	newerDir := filepath.Join(t.TempDir(), "dist")
	newerV := v + ".1"
	if out, err := exec.Command("make", "-C", "..", "--no-print-directory", "dist", "DIST="+newerDir, "DIST_VERSION="+newerV,
		"DIST_ARCHES="+runtime.GOARCH, "DIST_FORMATS=deb").CombinedOutput(); err != nil {
		t.Fatalf("make dist of a newer version: %v\n%s", err, out)
	}
	newer := filepath.Join(newerDir, "icebox_"+newerV+"-1_"+runtime.GOARCH+".deb")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	probe := self // run with ICEBOX_DIST_PROBE set: see TestMain
	cmd := exec.Command("unshare", "--mount", "--net", "--pid", "--fork", "--kill-child",
		"sh", "testdata/debinstall.sh", lower, deb, newer, probe, t.TempDir())
	cmd.Env = append(os.Environ(), "ICEBOX_DIST_PROBE=http://127.0.0.1:443/")
	out, err := cmd.CombinedOutput()
	t.Logf("debinstall.sh on an overlay of %s:\n%s", lower, out)
	if err != nil {
		t.Fatalf("debinstall.sh: %v", err)
	}
}
