package cli

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"berth.dev/berth/engine/registry"
)

// registryServeOptions are the flags of `berth registry serve`.
type registryServeOptions struct {
	addr      string
	root      string
	htpasswd  string
	tlsCert   string
	tlsKey    string
	accessLog string
}

// NewCmdRegistryServe builds `berth registry serve`.
func NewCmdRegistryServe(o *Options) *cobra.Command {
	var f registryServeOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve an OCI distribution registry stored on disk",
		Long: `Serve the OCI distribution API (/v2/) from a directory. Everything is on
disk: a restart loses nothing. Plain HTTP unless --tls-cert and --tls-key are
given; anonymous unless --htpasswd names a file of bcrypt hashes (htpasswd -B).

Once listening it prints "listening on ADDR" to stderr (with --addr
127.0.0.1:0 the kernel picks the port).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRegistryServe(cmd, o, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:5000", "address to listen on")
	fl.StringVar(&f.root, "root", "", "directory holding the registry's content (default DATA-ROOT/registry)")
	fl.StringVar(&f.htpasswd, "htpasswd", "", "require basic authentication against this htpasswd file (bcrypt)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate file (PEM)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	fl.StringVar(&f.accessLog, "access-log", "-", `access log file ("-" for stderr, "" for none)`)
	return cmd
}

func runRegistryServe(cmd *cobra.Command, o *Options, f registryServeOptions) error {
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	root := f.root
	if root == "" {
		root = filepath.Join(o.DataRoot, "registry")
	}
	opts := []registry.Option{registry.WithLogger(o.Log)}
	switch f.accessLog {
	case "":
	case "-":
		opts = append(opts, registry.WithAccessLog(cmd.ErrOrStderr()))
	default:
		lf, err := os.OpenFile(f.accessLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("access log: %w", err)
		}
		defer lf.Close()
		opts = append(opts, registry.WithAccessLog(lf))
	}
	if f.htpasswd != "" {
		opts = append(opts, registry.WithHtpasswd(f.htpasswd))
	}
	reg, err := registry.New(root, opts...)
	if err != nil {
		return err
	}
	defer reg.Close()
	errOut := cmd.ErrOrStderr()
	return reg.ListenAndServe(cmd.Context(), f.addr, f.tlsCert, f.tlsKey, func(a net.Addr) {
		scheme := "http"
		if f.tlsCert != "" {
			scheme = "https"
		}
		fmt.Fprintf(errOut, "listening on %s (%s://%s, root %s)\n", a, scheme, a, root)
		if w, ok := errOut.(interface{ Sync() error }); ok {
			w.Sync()
		}
	})
}
