package cli

import "github.com/spf13/cobra"

func init() { register("rmi", NewCmdRmi) }

// NewCmdRmi builds `berth rmi`, the short form of `berth image rm`.
func NewCmdRmi(o *Options) *cobra.Command { return NewCmdImageRemove(o, "rmi") }
