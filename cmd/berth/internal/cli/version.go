package cli

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version is set at build time with -ldflags "-X berth.dev/berth/cmd/berth/internal/cli.Version=...".
var Version = "dev"

func init() { register("version", NewCmdVersion) }

// VersionInfo is what `berth version -o json` prints.
type VersionInfo struct {
	Version    string `json:"version"`
	Commit     string `json:"commit,omitempty"`
	GoVersion  string `json:"goVersion"`
	Platform   string `json:"platform"`
	APIVersion string `json:"apiVersion"`
}

// NewCmdVersion builds `berth version`.
func NewCmdVersion(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print berth's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := VersionInfo{
				Version:    Version,
				GoVersion:  runtime.Version(),
				Platform:   runtime.GOOS + "/" + runtime.GOARCH,
				APIVersion: "berth.dev/v1alpha1",
			}
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						info.Commit = s.Value
					}
				}
			}
			w := cmd.OutOrStdout()
			if o.JSON() {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			fmt.Fprintf(w, "berth %s\n", info.Version)
			if info.Commit != "" {
				fmt.Fprintf(w, "commit:      %s\n", info.Commit)
			}
			fmt.Fprintf(w, "go:          %s\n", info.GoVersion)
			fmt.Fprintf(w, "platform:    %s\n", info.Platform)
			fmt.Fprintf(w, "manifests:   %s\n", info.APIVersion)
			return nil
		},
	}
}
