package prestart

import "testing"

func TestStartsContainer(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want bool
	}{
		{"run", []string{"run", "--rm", "busybox", "true"}, true},
		{"run after global flags", []string{"--data-root", "/tmp/x", "-o", "json", "run", "-d", "busybox"}, true},
		{"global flag with =", []string{"--data-root=/tmp/run", "run", "busybox"}, true},
		{"start", []string{"start", "web"}, true},
		{"restart", []string{"--log-level", "debug", "restart", "web"}, true},
		{"data root named run", []string{"--data-root", "run", "ps"}, false},
		{"other verb", []string{"ps", "-a"}, false},
		{"image named run", []string{"pull", "run"}, false},
		{"help", []string{"run", "--help"}, false},
		{"short help", []string{"run", "-h"}, false},
		{"help after the image is the command's", []string{"run", "busybox", "ls", "--help"}, true},
		{"no verb", []string{"--data-root", "/x"}, false},
		{"double dash", []string{"--", "run"}, false},
		{"nothing", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := startsContainer(tc.args); got != tc.want {
				t.Errorf("startsContainer(%q) = %v, want %v", tc.args, got, tc.want)
			}
		})
	}
}
