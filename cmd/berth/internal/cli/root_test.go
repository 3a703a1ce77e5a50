package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/spf13/viper"
)

// resolved are the global settings that Options resolves.
type resolved struct {
	DataRoot, LogLevel, Output string
	InsecureRegistries         []string
}

// settings runs `berth version` with args and env and returns the global
// settings it resolved.
func settings(t *testing.T, env map[string]string, args ...string) (resolved, error) {
	t.Helper()
	for _, k := range []string{"BERTH_DATA_ROOT", "BERTH_LOG_LEVEL", "BERTH_OUTPUT", "BERTH_CONFIG", "BERTH_INSECURE_REGISTRIES"} {
		v, ok := env[k]
		if !ok {
			v = ""
		}
		t.Setenv(k, v)
		if !ok {
			os.Unsetenv(k)
		}
	}
	var out, errOut bytes.Buffer
	o := &Options{Out: &out, Err: &errOut}
	root := NewCmdRoot(o)
	root.SetArgs(append(args, "version"))
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.Execute()
	return resolved{DataRoot: o.DataRoot, LogLevel: o.LogLevel, Output: o.Output, InsecureRegistries: o.InsecureRegistries}, err
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSettingsPrecedence checks flags > BERTH_* environment > config file >
// defaults, for each global setting.
func TestSettingsPrecedence(t *testing.T) {
	cfg := writeConfig(t, "# berth\ndata-root: /cfg/root\nlog-level: info\noutput: json\ninsecure-registries: [cfg:5000, other:5000]\nunknown-key: 1\n")
	dflt := resolved{DataRoot: "/var/lib/berth", LogLevel: "warn", Output: "text"}
	fromCfg := resolved{DataRoot: "/cfg/root", LogLevel: "info", Output: "json", InsecureRegistries: []string{"cfg:5000", "other:5000"}}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want resolved
	}{
		{"defaults", nil, []string{"--config", ""}, dflt},
		{"config file", nil, []string{"--config", cfg}, fromCfg},
		{"config file from env", map[string]string{"BERTH_CONFIG": cfg}, nil, fromCfg},
		{"config flag over env", map[string]string{"BERTH_CONFIG": cfg}, []string{"--config", ""}, dflt},
		{"env over config", map[string]string{"BERTH_DATA_ROOT": "/env/root", "BERTH_LOG_LEVEL": "error", "BERTH_OUTPUT": "text", "BERTH_INSECURE_REGISTRIES": "env:5000  env2:5000"},
			[]string{"--config", cfg},
			resolved{DataRoot: "/env/root", LogLevel: "error", Output: "text", InsecureRegistries: []string{"env:5000", "env2:5000"}}},
		{"empty env is unset", map[string]string{"BERTH_DATA_ROOT": "", "BERTH_OUTPUT": ""}, []string{"--config", cfg}, fromCfg},
		{"flags over env", map[string]string{"BERTH_DATA_ROOT": "/env/root", "BERTH_LOG_LEVEL": "error", "BERTH_INSECURE_REGISTRIES": "env:5000"},
			[]string{"--config", cfg, "--data-root", "/flag/root", "--log-level", "debug", "-o", "text", "--insecure-registries", "f1:5000,f2:5000", "--insecure-registries", "f3:5000"},
			resolved{DataRoot: "/flag/root", LogLevel: "debug", Output: "text", InsecureRegistries: []string{"f1:5000", "f2:5000", "f3:5000"}}},
		{"flag set to its default still wins", map[string]string{"BERTH_OUTPUT": "json"}, []string{"--config", "", "--output", "text"}, dflt},
		{"config keys ignore case, a string list splits at spaces", nil,
			[]string{"--config", writeConfig(t, "Data-Root: /cfg/upper\nOUTPUT: json\ninsecure-registries: a:5000 b:5000\n")},
			resolved{DataRoot: "/cfg/upper", LogLevel: "warn", Output: "json", InsecureRegistries: []string{"a:5000", "b:5000"}}},
		{"empty config file", nil, []string{"--config", writeConfig(t, "")}, dflt},
		{"commas separate a list in a variable too", map[string]string{"BERTH_INSECURE_REGISTRIES": "a:5000,b:5000 c:5000"}, []string{"--config", ""},
			resolved{DataRoot: "/var/lib/berth", LogLevel: "warn", Output: "text", InsecureRegistries: []string{"a:5000", "b:5000", "c:5000"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := settings(t, tc.env, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("settings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSettingsConfigErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	bad := writeConfig(t, "data-root: [unclosed\n")
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string // "" for none
	}{
		{"missing file named by flag", nil, []string{"--config", missing}, "config " + missing},
		{"missing file named by env", map[string]string{"BERTH_CONFIG": missing}, nil, "config " + missing},
		{"malformed file", nil, []string{"--config", bad}, "config " + bad},
		{"bad output", map[string]string{"BERTH_OUTPUT": "yaml"}, []string{"--config", ""}, `--output "yaml": must be text or json`},
		{"bad log level", nil, []string{"--config", "", "--log-level", "loud"}, `--log-level "loud"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := settings(t, tc.env, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestInConfig(t *testing.T) {
	v := viper.New()
	v.SetConfigFile(writeConfig(t, "Log-Level: debug\n"))
	v.SetConfigType("yaml")
	if err := v.ReadInConfig(); err != nil {
		t.Fatal(err)
	}
	o := &Options{v: v}
	if !o.inConfig(keyLogLevel) || o.inConfig(keyDataRoot) {
		t.Errorf("inConfig: log-level %v, data-root %v; want true, false", o.inConfig(keyLogLevel), o.inConfig(keyDataRoot))
	}
	if (&Options{}).inConfig(keyLogLevel) {
		t.Error("inConfig without a config file = true")
	}
}
