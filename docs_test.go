package runnel_test

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// guideSources are the files whose functions the guide's snippets quote,
// by the package prefix a snippet marker uses ("" for the root package).
var guideSources = map[string]string{
	"":     "*_test.go",
	"sse.": "sse/*_test.go",
}

// updateGuide rewrites the guide's snippets from their sources instead of
// comparing them: go test -run TestGuideSnippetsAreExamples -update-guide.
var updateGuide = flag.Bool("update-guide", false, "rewrite the Go snippets of docs/streaming.md from the examples they quote")

// snippetMarker starts every Go snippet of a guide: the function it is
// the body of ("ExampleAfter", "sse.ExampleStream") or, for a helper, the
// whole of.
var snippetMarker = regexp.MustCompile(`^// example: ((?:sse\.)?[A-Za-z_][A-Za-z0-9_]*)$`)

// TestGuideSnippetsAreExamples keeps docs/streaming.md true: each of its Go
// snippets must be, character for character, the body of a runnable
// example (or a helper) in the test files, which go test compiles and
// runs and whose output it checks.
func TestGuideSnippetsAreExamples(t *testing.T) {
	t.Parallel()
	guide, err := os.ReadFile("docs/streaming.md")
	if err != nil {
		t.Fatal(err)
	}
	funcs, err := parseFuncs(guideSources)
	if err != nil {
		t.Fatal(err)
	}
	snippets, err := goSnippets(string(guide))
	if err != nil {
		t.Fatal(err)
	}
	if len(snippets) == 0 {
		t.Fatal("docs/streaming.md has no Go snippets")
	}
	if *updateGuide {
		updated, err := replaceSnippets(string(guide), snippets, funcs)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("docs/streaming.md", []byte(updated), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, sn := range snippets {
		fn, ok := funcs[sn.name]
		if !ok {
			t.Errorf("docs/streaming.md:%d: snippet of %s: no such function in the test files", sn.line, sn.name)
			continue
		}
		if strings.Contains(sn.name, "Example") && !strings.Contains(fn, "// Output:") {
			t.Errorf("docs/streaming.md:%d: %s has no // Output: comment, so go test would not run it", sn.line, sn.name)
		}
		if sn.code != fn {
			t.Errorf("docs/streaming.md:%d: the snippet of %s differs from its source; copy it again.\nsnippet:\n%s\nsource:\n%s",
				sn.line, sn.name, sn.code, fn)
		}
	}
}

type snippet struct {
	name string
	line int // of the opening fence, from 1
	end  int // index of the closing fence's line, from 0
	code string
}

// replaceSnippets returns md with each snippet's code replaced by its
// source.
func replaceSnippets(md string, snippets []snippet, funcs map[string]string) (string, error) {
	lines := strings.Split(md, "\n")
	var out []string
	next := 0 // first line of lines not yet copied
	for _, sn := range snippets {
		src, ok := funcs[sn.name]
		if !ok {
			return "", fmt.Errorf("docs/streaming.md:%d: snippet of %s: no such function in the test files", sn.line, sn.name)
		}
		marker := sn.line // index of the marker line: the line after the fence
		out = append(out, lines[next:marker+1]...)
		out = append(out, strings.Split(src, "\n")...)
		next = sn.end
	}
	out = append(out, lines[next:]...)
	return strings.Join(out, "\n"), nil
}

// goSnippets returns the ```go blocks of a Markdown text. Each must start
// with a marker line naming its function; the code is what follows it.
func goSnippets(md string) ([]snippet, error) {
	var out []snippet
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```go" {
			continue
		}
		start := i + 1
		end := start
		for end < len(lines) && lines[end] != "```" {
			end++
		}
		if end == len(lines) {
			return nil, fmt.Errorf("line %d: unterminated ```go block", i+1)
		}
		if start == end {
			return nil, fmt.Errorf("line %d: empty ```go block", i+1)
		}
		m := snippetMarker.FindStringSubmatch(lines[start])
		if m == nil {
			return nil, fmt.Errorf("line %d: a ```go block must start with // example: FunctionName, so a test can check it; got %q", i+1, lines[start])
		}
		out = append(out, snippet{name: m[1], line: i + 1, end: end, code: strings.Join(lines[start+1:end], "\n")})
		i = end
	}
	return out, nil
}

// parseFuncs returns the source of every top-level function in the
// files matched by the globs, by prefixed name: for an Example, its body
// without the braces, unindented by one tab; for another function, its
// whole declaration without the doc comment.
func parseFuncs(globs map[string]string) (map[string]string, error) {
	out := make(map[string]string)
	for prefix, glob := range globs {
		files, err := filepath.Glob(glob)
		if err != nil {
			return nil, err
		}
		for _, path := range files {
			src, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
			if err != nil {
				return nil, err
			}
			if !strings.HasSuffix(f.Name.Name, "_test") {
				continue // the package's internal tests have helpers of the same names
			}
			for _, d := range f.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok || fd.Recv != nil || fd.Body == nil {
					continue
				}
				name := prefix + fd.Name.Name
				if _, dup := out[name]; dup {
					return nil, fmt.Errorf("%s: function %s is defined twice", path, name)
				}
				if strings.HasPrefix(fd.Name.Name, "Example") {
					body := string(src[fset.Position(fd.Body.Lbrace).Offset+1 : fset.Position(fd.Body.Rbrace).Offset])
					out[name] = unindent(strings.Trim(body, "\n"))
				} else {
					out[name] = string(src[fset.Position(fd.Type.Func).Offset:fset.Position(fd.End()).Offset])
				}
			}
		}
	}
	return out, nil
}

// unindent removes one leading tab from each line.
func unindent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "\t")
	}
	return strings.Join(lines, "\n")
}

// TestExportedIdentifiersDocumented fails for an exported identifier of the
// SDK or the sse package without a doc comment: functions, methods of
// exported types, types, constants, variables, interface methods and
// struct fields.
func TestExportedIdentifiersDocumented(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{".", "sse"} {
		missing, err := undocumented(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range missing {
			t.Errorf("%s has no doc comment", m)
		}
	}
}

// undocumented lists the exported identifiers of the non-test Go files in
// dir that lack a doc comment, as "file:line: name".
func undocumented(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	var missing []string
	fset := token.NewFileSet()
	report := func(pos token.Pos, what string) {
		p := fset.Position(pos)
		missing = append(missing, fmt.Sprintf("%s:%d: %s", p.Filename, p.Line, what))
	}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Name.IsExported() && exportedReceiver(d) && d.Doc == nil {
					report(d.Pos(), "func "+d.Name.Name)
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch s := spec.(type) {
					case *ast.TypeSpec:
						if !s.Name.IsExported() {
							continue
						}
						if s.Doc == nil && d.Doc == nil {
							report(s.Pos(), "type "+s.Name.Name)
						}
						checkMembers(s, report)
					case *ast.ValueSpec:
						for _, n := range s.Names {
							// A constant or variable in a group may share the
							// group's comment.
							if n.IsExported() && s.Doc == nil && s.Comment == nil && d.Doc == nil {
								report(n.Pos(), n.Name)
							}
						}
					}
				}
			}
		}
	}
	return missing, nil
}

// exportedReceiver reports whether a function is a plain function or a
// method of an exported type (methods of unexported types are not API).
func exportedReceiver(d *ast.FuncDecl) bool {
	if d.Recv == nil {
		return true
	}
	t := d.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	id, ok := t.(*ast.Ident)
	return !ok || id.IsExported()
}

// checkMembers reports the undocumented exported fields of a struct type
// and methods of an interface type.
func checkMembers(s *ast.TypeSpec, report func(token.Pos, string)) {
	var fields *ast.FieldList
	switch t := s.Type.(type) {
	case *ast.StructType:
		fields = t.Fields
	case *ast.InterfaceType:
		fields = t.Methods
	default:
		return
	}
	for _, fld := range fields.List {
		for _, n := range fld.Names {
			if n.IsExported() && fld.Doc == nil && fld.Comment == nil {
				report(n.Pos(), s.Name.Name+"."+n.Name)
			}
		}
	}
}
