package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// versionInfo is what `runnel version` prints: what the binary was built
// from, as the Go toolchain recorded it.
type versionInfo struct {
	// Version is the module version: a release tag such as v0.3.0 when
	// installed with `go install …@version`, "(devel)" when built from a
	// checkout.
	Version string `json:"version"`
	// Commit, CommitTime and Modified come from the VCS stamp of a build in
	// a git checkout; empty when the build had none (go run, -buildvcs=false).
	Commit     string `json:"commit,omitempty"`
	CommitTime string `json:"commitTime,omitempty"`
	Modified   bool   `json:"modified,omitempty"`
	GoVersion  string `json:"goVersion"`
	Platform   string `json:"platform"`
}

func readVersion() versionInfo {
	v := versionInfo{Version: "unknown", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if info.Main.Version != "" {
		v.Version = info.Main.Version
	}
	if info.GoVersion != "" {
		v.GoVersion = info.GoVersion
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.CommitTime = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func newVersionCommand() *cobra.Command {
	var output outputFlags
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version runnel was built with",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := output.format(cmd)
			if err != nil {
				return err
			}
			v, out := readVersion(), cmd.OutOrStdout()
			if format == outputJSON {
				return writeJSON(out, v)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "Version:\t%s\n", v.Version)
			if v.Commit != "" {
				commit := v.Commit
				if v.Modified {
					commit += " (modified)"
				}
				fmt.Fprintf(tw, "Commit:\t%s\n", commit)
				fmt.Fprintf(tw, "Commit time:\t%s\n", v.CommitTime)
			}
			fmt.Fprintf(tw, "Go:\t%s\n", v.GoVersion)
			fmt.Fprintf(tw, "Platform:\t%s\n", v.Platform)
			return tw.Flush()
		},
	}
	output.register(cmd)
	return cmd
}
