package schemas

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite berth.schema.json")

func TestSchemaUpToDate(t *testing.T) {
	got, err := Generate("../spec")
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("berth.schema.json", got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile("berth.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("berth.schema.json is stale: run make schemas (go test ./schemas -run TestSchemaUpToDate -update)\n%s", cmp.Diff(string(want), string(got)))
	}
}
