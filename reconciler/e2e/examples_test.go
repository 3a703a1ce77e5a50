package e2e

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"berth.dev/berth/engine/network"
	"berth.dev/berth/spec"
)

// TestExamples runs every example through its life: plan (exit 2), apply,
// plan (exit 0), one env value changed (exactly one replace, with its
// reason), apply, destroy, and nothing left on the host. Examples run one
// after the other: they publish fixed host ports.
func TestExamples(t *testing.T) {
	for _, name := range examples(t) {
		t.Run(name, func(t *testing.T) {
			h := newHost(t)
			dir := copyExample(t, name)

			if code, out := h.exitCode("plan", "--detailed-exitcode", dir); code != 2 {
				t.Fatalf("first plan: exit %d, want 2\n%s", code, out)
			}
			h.mustBerth("apply", "--wait", "--timeout", "2m", dir)
			if code, out := h.exitCode("plan", "--detailed-exitcode", dir); code != 0 {
				t.Fatalf("plan after apply: exit %d, want 0\n%s", code, out)
			}
			// The leak check below looks at the table that holds the
			// example's port rules now.
			if n, err := nftRules(network.TableName(h.root)); err != nil || n == 0 {
				t.Errorf("no nftables rules while the example runs (%v): the leak check would see nothing", err)
			}

			container, key := changeOneEnv(t, dir)
			doc := h.planJSON(dir)
			var pending []map[string]any
			for _, c := range doc["changes"].([]any) {
				c := c.(map[string]any)
				if c["action"] != "no-op" {
					pending = append(pending, c)
				}
			}
			if len(pending) != 1 || pending[0]["address"] != "container/"+container || pending[0]["action"] != "replace" {
				t.Fatalf("plan after changing env %s of %s: %v", key, container, pending)
			}
			reasons := pending[0]["reasons"].([]any)
			if len(reasons) != 1 || reasons[0] != "spec changed: env."+key+" forces replacement" {
				t.Errorf("reasons: %v", reasons)
			}
			out := h.mustBerth("plan", dir)
			if !strings.Contains(out, "-/+ container \""+container+"\"") || !strings.Contains(out, "Plan: 0 to add, 0 to change, 1 to replace, 0 to destroy.") {
				t.Errorf("text plan:\n%s", out)
			}
			// Without --wait: the changed value may well break the app.
			h.mustBerth("apply", dir)
			if code, out := h.exitCode("plan", "--detailed-exitcode", dir); code != 0 {
				t.Fatalf("plan after the second apply: exit %d\n%s", code, out)
			}
			h.mustBerth("destroy", "--volumes", dir)
			h.assertClean()
		})
	}
}

// changeOneEnv changes the first env value written in a container's
// manifest and returns the container and the variable.
func changeOneEnv(t *testing.T, dir string) (container, key string) {
	t.Helper()
	set, err := spec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range set.Kind(spec.KindContainer) {
		c := r.Container()
		keys := make([]string, 0, len(c.Env))
		for k := range c.Env {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		data, err := os.ReadFile(r.Pos.File)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			re := regexp.MustCompile(`(?m)^(\s+` + regexp.QuoteMeta(k) + `:\s*).*$`)
			if !re.Match(data) {
				continue // from an env file
			}
			data = re.ReplaceAll(data, []byte(`${1}"changed-by-e2e"`))
			if err := os.WriteFile(r.Pos.File, data, 0o644); err != nil {
				t.Fatal(err)
			}
			return r.Name(), k
		}
	}
	t.Fatalf("no container of %s has an env value in its manifest", dir)
	return "", ""
}
