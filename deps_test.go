package runnel_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The SDK (this package, sse, and any other public package of the module)
// is what applications link: it speaks to the engine over the network and
// must not pull in the engine, its stores or a database driver. These are
// forbidden in its dependencies, by import path prefix (a prefix matches
// the package itself and everything below it).
var sdkForbiddenImports = []string{
	"github.com/runnel-dev/runnel/internal/store", // store, sqlite, postgres, storetest
	"github.com/runnel-dev/runnel/internal/engine",
	"github.com/runnel-dev/runnel/internal/eventlog",
	"github.com/runnel-dev/runnel/internal/server",
	"github.com/runnel-dev/runnel/internal/api",
	"github.com/runnel-dev/runnel/internal/testengine",
	"github.com/runnel-dev/runnel/internal/testdb",
	"modernc.org/sqlite",
	"modernc.org/libc",
	"github.com/jackc/", // pgx, pgconn, pgpassfile, puddle ...
	"github.com/lib/pq",
	"github.com/mattn/go-sqlite3",
	"database/sql", // and database/sql/driver: no driver seam either
}

// listedPackage is what `go list -json` says of one package, as far as the
// dependency check needs.
type listedPackage struct {
	ImportPath string
	Imports    []string
	Standard   bool
	DepsErrors []struct{ Err string }
	Error      *struct{ Err string }
}

// goList runs `go list -json` with args and decodes its stream of packages.
func goList(t *testing.T, args ...string) []listedPackage {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json=ImportPath,Imports,Standard,DepsErrors,Error"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list %s: decode: %v", strings.Join(args, " "), err)
		}
		if p.Error != nil {
			t.Fatalf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// sdkPackages are the module's public packages: everything but internal/,
// cmd/ and examples/.
func sdkPackages(t *testing.T) []string {
	t.Helper()
	var sdk []string
	for _, p := range goList(t, "./...") {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, "github.com/runnel-dev/runnel"), "/")
		if strings.HasPrefix(rel, "internal/") || strings.HasPrefix(rel, "cmd/") || strings.HasPrefix(rel, "examples/") {
			continue
		}
		sdk = append(sdk, p.ImportPath)
	}
	return sdk
}

// forbiddenChains walks the import graph from each root and returns, for
// each forbidden package reached, one shortest import chain leading to it
// ("root -> a -> b -> forbidden"), sorted.
func forbiddenChains(graph map[string][]string, roots []string, forbidden []string) []string {
	isForbidden := func(path string) bool {
		for _, f := range forbidden {
			if path == f || strings.HasPrefix(path, strings.TrimSuffix(f, "/")+"/") ||
				(strings.HasSuffix(f, "/") && strings.HasPrefix(path, f)) {
				return true
			}
		}
		return false
	}
	var chains []string
	reported := map[string]bool{}
	for _, root := range roots {
		// Breadth first, so the chain named is a shortest one.
		parent := map[string]string{root: ""}
		queue := []string{root}
		for len(queue) > 0 {
			pkg := queue[0]
			queue = queue[1:]
			if isForbidden(pkg) {
				if !reported[pkg] {
					reported[pkg] = true
					chain := []string{pkg}
					for p := parent[pkg]; p != ""; p = parent[p] {
						chain = append(chain, p)
					}
					slices.Reverse(chain)
					chains = append(chains, strings.Join(chain, " -> "))
				}
				continue // what lies behind it is reported through it
			}
			for _, imp := range graph[pkg] {
				if _, seen := parent[imp]; !seen {
					parent[imp] = pkg
					queue = append(queue, imp)
				}
			}
		}
	}
	slices.Sort(chains)
	return chains
}

// importGraph lists pkgs with every dependency (as a program linking them
// gets them: no test files) and returns who imports what.
func importGraph(t *testing.T, pkgs ...string) map[string][]string {
	t.Helper()
	graph := map[string][]string{}
	for _, p := range goList(t, append([]string{"-deps"}, pkgs...)...) {
		for _, e := range p.DepsErrors {
			t.Fatalf("go list -deps: %s: %s", p.ImportPath, e.Err)
		}
		graph[p.ImportPath] = p.Imports
	}
	return graph
}

// TestSDKImportsNoEngineStoreOrDriver keeps the SDK light: applications
// importing github.com/runnel-dev/runnel or its sse package link no store,
// engine, event log or database driver. A failure names each forbidden
// package and the import chain that brings it in.
func TestSDKImportsNoEngineStoreOrDriver(t *testing.T) {
	t.Parallel()
	sdk := sdkPackages(t)
	for _, want := range []string{"github.com/runnel-dev/runnel", "github.com/runnel-dev/runnel/sse"} {
		if !slices.Contains(sdk, want) {
			t.Fatalf("%s is not among the SDK packages found (%v)", want, sdk)
		}
	}
	if chains := forbiddenChains(importGraph(t, sdk...), sdk, sdkForbiddenImports); len(chains) > 0 {
		t.Fatalf("the SDK packages must not depend on the engine, a store or a database driver, but:\n  %s\n"+
			"(forbidden prefixes: sdkForbiddenImports in deps_test.go)", strings.Join(chains, "\n  "))
	}
}

// The check itself finds a real offender: the runnel command links the
// engine and the stores, and each chain named starts at the package checked
// and ends at a forbidden one (the first on its way: what lies behind it,
// such as the SQLite driver behind the SQLite store, is not listed again).
func TestSDKImportCheckFindsOffenders(t *testing.T) {
	t.Parallel()
	const cmd = "github.com/runnel-dev/runnel/cmd/runnel"
	chains := forbiddenChains(importGraph(t, cmd), []string{cmd}, sdkForbiddenImports)
	store := false
	for _, c := range chains {
		if !strings.HasPrefix(c, cmd+" -> ") {
			t.Errorf("chain does not start at %s: %s", cmd, c)
		}
		store = store || strings.HasSuffix(c, " -> github.com/runnel-dev/runnel/internal/store/sqlite")
	}
	if !store {
		t.Fatalf("no chain from %s to the SQLite store among:\n%s", cmd, strings.Join(chains, "\n"))
	}

	// And on a small graph: one shortest chain per forbidden package,
	// nothing reported behind a forbidden package, prefixes matched on
	// whole path elements.
	graph := map[string][]string{
		"sdk":     {"helper", "github.com/runnel-dev/runnel/internal/storetestish", "net/http"},
		"helper":  {"github.com/runnel-dev/runnel/internal/store/sqlite", "github.com/jackc/pgx/v5"},
		"sdk/sse": {"sdk", "database/sql/driver"},
		"github.com/runnel-dev/runnel/internal/store/sqlite": {"modernc.org/sqlite"},
	}
	got := forbiddenChains(graph, []string{"sdk", "sdk/sse"}, sdkForbiddenImports)
	want := []string{
		"sdk -> helper -> github.com/jackc/pgx/v5",
		"sdk -> helper -> github.com/runnel-dev/runnel/internal/store/sqlite",
		"sdk/sse -> database/sql/driver",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("chains:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
