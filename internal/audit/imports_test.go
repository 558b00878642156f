package audit

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestImportsNotAudited: the auditor does not import the code it audits
// (config, turnsrv), so it judges a server only from the outside; what it
// is to audit comes in Config (daemon.AuditConfig builds it from a
// configuration). Test files may use a real turnsrv as the server audited.
func TestImportsNotAudited(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	forbidden := []string{"github.com/icebox-project/icebox/config", "github.com/icebox-project/icebox/turnsrv"}
	var files int
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		files++
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbidden {
				if path == bad || strings.HasPrefix(path, bad+"/") {
					t.Errorf("%s imports %s: the auditor must not import the code it audits", name, path)
				}
			}
		}
	}
	if files == 0 {
		t.Fatal("no Go files found: the test looked in the wrong place")
	}
}
