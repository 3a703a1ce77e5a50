package cli

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCommandArgs(t *testing.T) {
	for _, tc := range []struct {
		args, want []string
	}{
		{[]string{"web"}, []string{}},
		{[]string{"web", "ps"}, []string{"ps"}},
		{[]string{"web", "--", "ps", "-ef"}, []string{"ps", "-ef"}},
		{[]string{"web", "sh", "--", "x"}, []string{"sh", "--", "x"}}, // only a leading "--" is ours
		{[]string{"web", "--", "--"}, []string{"--"}},
	} {
		if diff := cmp.Diff(tc.want, commandArgs(tc.args)); diff != "" {
			t.Errorf("commandArgs(%q) (-want +got):\n%s", tc.args, diff)
		}
	}
}

func TestTruncImage(t *testing.T) {
	pinned := "127.0.0.1:5000/b/busybox@sha256:513da1bc904c61f8b1ce95dda576df583e2add08b23f7727a9e26c48872a16db"
	for _, tc := range []struct {
		ref  string
		full bool
		want string
	}{
		{pinned, false, "127.0.0.1:5000/b/busybox@sha256:513da1bc904c"},
		{pinned, true, pinned},
		{"busybox:1.35", false, "busybox:1.35"},
	} {
		if got := truncImage(tc.ref, tc.full); got != tc.want {
			t.Errorf("truncImage(%q, %v) = %q, want %q", tc.ref, tc.full, got, tc.want)
		}
	}
}
