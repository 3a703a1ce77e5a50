// Package cli is berth's command line: one file per verb, each parsing flags
// into a typed options struct and making one call into the reconciler or the
// engine, with output through a renderer (text, colour only on a terminal
// and never under NO_COLOR, or JSON with -o json).
package cli
