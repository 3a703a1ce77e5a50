package main

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "berth.dev/berth"

// TestImportDirection enforces cmd -> reconciler -> {spec, engine}: spec
// imports nothing of ours, the engine never imports spec or the reconciler,
// and nothing below cmd imports cmd.
func TestImportDirection(t *testing.T) {
	pkgs := listPackages(t)
	forbid := func(from, to string) {
		for _, p := range pkgs {
			if !under(p.ImportPath, from) {
				continue
			}
			for _, dep := range p.Deps {
				if under(dep, to) {
					t.Errorf("%s imports %s (%s must not depend on %s)", p.ImportPath, dep, from, to)
				}
			}
		}
	}
	for _, p := range pkgs {
		if !under(p.ImportPath, module+"/spec") {
			continue
		}
		for _, dep := range p.Deps {
			if strings.HasPrefix(dep, module+"/") && !under(dep, module+"/spec") {
				t.Errorf("%s imports %s: spec must import nothing else of berth's", p.ImportPath, dep)
			}
		}
	}
	forbid(module+"/engine", module+"/spec")
	forbid(module+"/engine", module+"/reconciler")
	forbid(module+"/engine", module+"/cmd")
	forbid(module+"/reconciler", module+"/cmd")
	forbid(module+"/spec", module+"/engine")
}

// TestSpecBuildsEverywhere: spec is pure data and must build on any OS.
func TestSpecBuildsEverywhere(t *testing.T) {
	for _, goos := range []string{"darwin", "windows"} {
		cmd := exec.Command("go", "build", "./spec/...")
		cmd.Dir = "../.."
		cmd.Env = append(cmd.Environ(), "GOOS="+goos, "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("GOOS=%s go build ./spec/...: %v\n%s", goos, err, out)
		}
	}
}

type pkg struct {
	ImportPath string
	Deps       []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps=false", "-json=ImportPath,Deps", module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return pkgs
}

func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}
