package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newTokenCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage API tokens"}
	var (
		flags  clientFlags
		tenant string
		name   string
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Mint an API token for a tenant (created if new); needs an admin token",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := flags.client()
			if err != nil {
				return err
			}
			tok, err := c.Admin().CreateToken(cmd.Context(), tenant, name)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	flags.register(create)
	create.Flags().StringVar(&tenant, "tenant", "default", "tenant the token belongs to")
	create.Flags().StringVar(&name, "name", "", "a label for the token")
	cmd.AddCommand(create)
	return cmd
}
