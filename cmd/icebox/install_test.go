package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icebox-project/icebox/internal/testenv"
)

// TestMakeInstall runs `make install DESTDIR=… PREFIX=/usr` and checks the
// layout, then has systemd-analyze verify the installed unit.
func TestMakeInstall(t *testing.T) {
	testenv.Tool(t, "apt-get install make", "make")
	dest := t.TempDir()
	out, err := exec.Command("make", "-C", "../..", "install", "DESTDIR="+dest, "PREFIX=/usr").CombinedOutput()
	if err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for path, mode := range map[string]os.FileMode{
		"usr/bin/icebox":                    0o755,
		"etc/systemd/system/icebox.service": 0o644,
		"usr/lib/sysusers.d/icebox.conf":    0o644,
		"usr/lib/sysctl.d/60-icebox.conf":   0o644,
		"etc/icebox/icebox.yaml":            0o640,
	} {
		fi, err := os.Stat(filepath.Join(dest, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %04o, want %04o", path, fi.Mode().Perm(), mode)
		}
	}
	unit, err := os.ReadFile(filepath.Join(dest, "etc/systemd/system/icebox.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/bin/icebox -config /etc/icebox/icebox.yaml") {
		t.Errorf("unit does not start the installed binary:\n%s", unit)
	}
	if out, err := exec.Command(filepath.Join(dest, "usr/bin/icebox"), "check-config", "-config", filepath.Join(dest, "etc/icebox/icebox.yaml")).CombinedOutput(); err != nil {
		t.Errorf("installed example config: %v\n%s", err, out)
	}
	// A second install keeps the operator's edited config.
	if err := os.WriteFile(filepath.Join(dest, "etc/icebox/icebox.yaml"), []byte("public_ip: 198.51.100.9\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("make", "-C", "../..", "install", "DESTDIR="+dest, "PREFIX=/usr").CombinedOutput(); err != nil {
		t.Fatalf("second make install: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "etc/icebox/icebox.yaml")); string(b) != "public_ip: 198.51.100.9\n" {
		t.Errorf("make install overwrote the existing config")
	}

	analyze := testenv.Tool(t, "apt-get install systemd", "systemd-analyze")
	// verify wants ExecStart to exist: point it at the DESTDIR binary.
	verifyUnit := filepath.Join(t.TempDir(), "icebox.service")
	fixed := strings.ReplaceAll(string(unit), "ExecStart=/usr/bin/icebox", "ExecStart="+filepath.Join(dest, "usr/bin/icebox"))
	if err := os.WriteFile(verifyUnit, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", verifyUnit).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
