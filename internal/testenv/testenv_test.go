package testenv

import "testing"

// recorder is a testing.TB that records Skip and Fatal instead of
// ending the goroutine, so both outcomes can be checked.
type recorder struct {
	testing.TB
	skipped, failed bool
}

func (r *recorder) Helper()                           {}
func (r *recorder) Skip(args ...any)                  { r.skipped = true }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = true }

func TestRequire(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Run("CI="+ci, func(t *testing.T) {
			t.Setenv("CI", ci)
			r := &recorder{TB: t}
			Require(r, true, "present")
			if r.skipped || r.failed {
				t.Fatalf("met requirement: skipped %v failed %v", r.skipped, r.failed)
			}
			r = &recorder{TB: t}
			if p := Tool(r, "apt-get install nothing", "icebox-no-such-tool-a", "icebox-no-such-tool-b"); p != "" {
				t.Fatalf("missing tool: got path %q", p)
			}
			if ci == "" && (!r.skipped || r.failed) {
				t.Errorf("missing tool outside CI: skipped %v failed %v, want skipped", r.skipped, r.failed)
			}
			if ci != "" && (r.skipped || !r.failed) {
				t.Errorf("missing tool in CI: skipped %v failed %v, want failed", r.skipped, r.failed)
			}
		})
	}
	if p := Tool(t, "", "sh"); p == "" {
		t.Error("sh not found")
	}
}
