package cgroup

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/engine"
)

func TestLimitsOf(t *testing.T) {
	tests := []struct {
		name    string
		r       engine.Resources
		want    limits
		wantErr error
	}{
		{name: "zero is unlimited", r: engine.Resources{}, want: limits{memory: -1, quota: -1, shares: 1024, pids: -1}},
		{
			name: "all set",
			r:    engine.Resources{MemoryBytes: 64 << 20, NanoCPUs: 1.5e9, CPUShares: 512, PidsLimit: 100},
			want: limits{memory: 64 << 20, quota: 150000, shares: 512, pids: 100},
		},
		{name: "half a cpu", r: engine.Resources{NanoCPUs: 5e8}, want: limits{memory: -1, quota: 50000, shares: 1024, pids: -1}},
		{name: "smallest cpu", r: engine.Resources{NanoCPUs: 1e7}, want: limits{memory: -1, quota: 1000, shares: 1024, pids: -1}},
		{name: "negative pids is unlimited", r: engine.Resources{PidsLimit: -1}, want: limits{memory: -1, quota: -1, shares: 1024, pids: -1}},
		{name: "too few cpus", r: engine.Resources{NanoCPUs: 9e6}, wantErr: engine.ErrInvalid},
		{name: "negative memory", r: engine.Resources{MemoryBytes: -1}, wantErr: engine.ErrInvalid},
		{name: "negative cpus", r: engine.Resources{NanoCPUs: -1}, wantErr: engine.ErrInvalid},
		{name: "negative shares", r: engine.Resources{CPUShares: -2}, wantErr: engine.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := limitsOf(tc.r)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("limitsOf(%+v) error = %v, want %v", tc.r, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("limitsOf(%+v): %v", tc.r, err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(limits{})); diff != "" {
				t.Errorf("limitsOf(%+v) (-want +got):\n%s", tc.r, diff)
			}
		})
	}
}

func TestCheckPath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"/berth/0123abcd", true},
		{"/berth", true},
		{"/a/b/c", true},
		{"", false},
		{"/", false},
		{"berth/x", false},
		{"/berth/../x", false},
		{"/berth/x/", false},
		{"/berth//x", false},
		{"/berth/./x", false},
	}
	for _, tc := range tests {
		err := checkPath(tc.path)
		if tc.ok != (err == nil) {
			t.Errorf("checkPath(%q) = %v, want ok=%v", tc.path, err, tc.ok)
		}
		if err != nil && !errors.Is(err, engine.ErrInvalid) {
			t.Errorf("checkPath(%q) = %v, want engine.ErrInvalid", tc.path, err)
		}
	}
}

func TestPathFor(t *testing.T) {
	if got, want := PathFor("abc"), "/berth/abc"; got != want {
		t.Errorf("PathFor(abc) = %q, want %q", got, want)
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	// Validation comes before any cgroupfs access: no root needed.
	if _, err := New("relative/path", engine.Resources{}); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("New(relative) = %v, want ErrInvalid", err)
	}
	if _, err := New(PathFor("x"), engine.Resources{NanoCPUs: 1}); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("New(cpus 1e-9) = %v, want ErrInvalid", err)
	}
	if _, err := Load("/"); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("Load(/) = %v, want ErrInvalid", err)
	}
	if _, err := List("x"); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("List(x) = %v, want ErrInvalid", err)
	}
}
