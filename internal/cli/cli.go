// Package cli is what every nodeping binary does the same way at start: its flag set, the
// environment variables that set flags, its help, and the logger that --log-level and
// --log-format choose.
package cli

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
)

// EnvName is the environment variable that sets a flag: NODEPING_ and the flag in upper snake
// case (--icmp-count: NODEPING_ICMP_COUNT).
func EnvName(flagName string) string {
	return "NODEPING_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// BindEnv sets every flag of fs, except those named in skip, whose environment variable
// (EnvName) is set and not empty. Call it before fs.Parse, so that the command line wins. It
// stops at the first value the flag refuses.
func BindEnv(fs *flag.FlagSet, getenv func(string) string, skip ...string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || slices.Contains(skip, f.Name) {
			return
		}
		name := EnvName(f.Name)
		if v := getenv(name); v != "" {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("environment variable %s=%q: %w", name, v, serr)
			}
		}
	})
	return err
}

// NewFlagSet returns a flag set that writes nothing itself: Parse reports its errors once, and
// PrintUsage prints the help.
func NewFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// Parse sets the flags of fs from the environment (BindEnv, except those named in skip), then
// from args (flags win), and refuses arguments that are not flags. It returns flag.ErrHelp for
// --help.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string, skip ...string) error {
	if err := BindEnv(fs, getenv, skip...); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return nil
}

// PrintUsage writes the help: usage, then every flag of fs with its default.
func PrintUsage(w io.Writer, usage string, fs *flag.FlagSet) {
	fs.SetOutput(w)
	fmt.Fprint(w, usage)
	fs.PrintDefaults()
}

// LogOptions are the logger's flags.
type LogOptions struct {
	Level, Format string
}

// AddFlags defines --log-level and --log-format on fs.
func (o *LogOptions) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&o.Format, "log-format", "text", "log format: text or json")
}

// Validate checks the level and the format.
func (o LogOptions) Validate() error {
	_, err := o.handlerOptions()
	return err
}

func (o LogOptions) handlerOptions() (*slog.HandlerOptions, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(o.Level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", o.Level, err)
	}
	if o.Format != "text" && o.Format != "json" {
		return nil, fmt.Errorf("--log-format %q: must be text or json", o.Format)
	}
	return &slog.HandlerOptions{Level: l}, nil
}

// NewLogger returns the logger the options choose, writing to w.
func (o LogOptions) NewLogger(w io.Writer) (*slog.Logger, error) {
	opts, err := o.handlerOptions()
	if err != nil {
		return nil, err
	}
	if o.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// Revision is the VCS revision the binary was built from, "unknown" without one.
func Revision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}
