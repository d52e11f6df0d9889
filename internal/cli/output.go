package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

// outputFormat is how list and get commands print what they fetched.
type outputFormat string

const (
	// outputTable is for people: aligned columns. It is the default on a
	// terminal and off it, so that piping a listing to grep shows what the
	// terminal showed; scripts that parse output ask for json.
	outputTable outputFormat = "table"
	// outputJSON prints the API objects, indented.
	outputJSON outputFormat = "json"
)

// outputFlags are the --output flag and its older shorthand --json.
type outputFlags struct {
	output string
	asJSON bool
}

func (f *outputFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.output, "output", "o", string(outputTable), "output format: table or json (the API objects)")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "same as --output json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(
		[]string{string(outputTable), string(outputJSON)}, cobra.ShellCompDirectiveNoFileComp))
}

// format validates the flags. A bad value is refused before any call to
// the engine, naming the allowed values.
func (f *outputFlags) format(cmd *cobra.Command) (outputFormat, error) {
	switch o := outputFormat(f.output); o {
	case outputTable, outputJSON:
		if f.asJSON && o == outputTable && cmd.Flags().Changed("output") {
			return "", fmt.Errorf("--json contradicts --output table: give one of them")
		}
		if f.asJSON {
			return outputJSON, nil
		}
		return o, nil
	default:
		return "", fmt.Errorf("invalid --output %q: want table or json", f.output)
	}
}
