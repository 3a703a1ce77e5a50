package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/engine"
)

func init() { register("image", NewCmdImage) }

// NewCmdImage builds `berth image` and its subcommands.
func NewCmdImage(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage images",
		Long: `Images live in a content-addressed store under the data root: every blob
once, layers unpacked once into snapshots shared by the images that contain
them. Pull and push talk to registries with the credentials of the Docker
config file; plain HTTP only to loopback and --insecure-registries.`,
		Args: cobra.NoArgs,
	}
	ls := NewCmdImages(o)
	ls.Use, ls.Aliases = "ls [REPOSITORY[:TAG]]", []string{"list"}
	cmd.AddCommand(
		NewCmdPull(o),
		NewCmdPush(o),
		NewCmdTag(o),
		ls,
		NewCmdImageImport(o),
		NewCmdImageInspect(o),
		NewCmdImageRemove(o, "rm"),
		NewCmdImagePrune(o),
	)
	return cmd
}

// withImages runs fn with the engine's image store, closing the engine
// afterwards.
func (o *Options) withImages(ctx context.Context, fn func(engine.Images) error) error {
	e, err := o.Engine(ctx)
	if err != nil {
		return err
	}
	defer e.Close()
	return fn(e.Images())
}

// writeImageResult prints the outcome of a pull or push: the image with
// -o json, only its digest with -q, text otherwise.
func writeImageResult(w io.Writer, o *Options, quiet bool, img engine.Image, text string) error {
	switch {
	case o.JSON():
		return writeImageJSON(w, img)
	case quiet:
		_, err := fmt.Fprintln(w, img.Digest)
		return err
	default:
		_, err := io.WriteString(w, text)
		return err
	}
}

func writeImageJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// formatImageSize prints sizes in decimal units, as Docker does.
func formatImageSize(n int64) string {
	f := float64(n)
	for _, u := range []string{"B", "kB", "MB", "GB", "TB"} {
		if f < 1000 || u == "TB" {
			if u == "B" {
				return fmt.Sprintf("%d%s", n, u)
			}
			return fmt.Sprintf("%.3g%s", f, u)
		}
		f /= 1000
	}
	return ""
}

// formatImageAge is "5 minutes ago" and the like.
func formatImageAge(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	d := now.Sub(t)
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit + " ago"
		}
		return fmt.Sprintf("%d %ss ago", n, unit)
	}
	switch {
	case d < time.Minute:
		return "Less than a minute ago"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour")
	case d < 14*24*time.Hour:
		return plural(int(d/(24*time.Hour)), "day")
	case d < 60*24*time.Hour:
		return plural(int(d/(7*24*time.Hour)), "week")
	case d < 2*365*24*time.Hour:
		return plural(int(d/(30*24*time.Hour)), "month")
	default:
		return plural(int(d/(365*24*time.Hour)), "year")
	}
}
