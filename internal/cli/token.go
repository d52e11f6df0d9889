package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel"
)

func newTokenCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Mint, list and revoke API tokens (needs an admin token)"}
	cmd.AddCommand(newTokenCreateCommand(), newTokenListCommand(), newTokenRevokeCommand())
	return cmd
}

func newTokenCreateCommand() *cobra.Command {
	var (
		flags   clientFlags
		opts    runnel.TokenOptions
		expires time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Mint an API token for a tenant (created if new); needs an admin token",
		Long: "Mint an API token for a tenant (created if new). The secret alone is printed on stdout, for\n" +
			"scripts; its id (for runnel token revoke) and expiry go to stderr. Only a hash is stored: the\n" +
			"secret cannot be shown again. Needs an admin token.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if expires < 0 || (cmd.Flags().Changed("expires") && expires < time.Second) {
				return fmt.Errorf("invalid --expires %s: want a duration of at least 1s, such as 24h", expires)
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			opts.ExpiresIn = expires
			tok, err := c.Admin().MintToken(cmd.Context(), opts)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok.Secret)
			when := "never expires"
			if !tok.ExpiresAt.IsZero() {
				when = "expires " + tok.ExpiresAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "token id %s, %s\n", tok.ID, when)
			return nil
		},
	}
	flags.register(cmd)
	cmd.Flags().StringVar(&opts.Tenant, "tenant", "default", "tenant the token belongs to")
	cmd.Flags().StringVar(&opts.Name, "name", "", "a label for the token (shown by runnel token list)")
	cmd.Flags().DurationVar(&expires, "expires", 0, "lifetime, such as 24h or 720h (default: never expires)")
	cmd.Flags().BoolVar(&opts.Admin, "admin", false, "mint an admin token, which may also mint, list and revoke tokens")
	return cmd
}

func newTokenListCommand() *cobra.Command {
	var (
		flags  clientFlags
		output outputFlags
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the API and admin tokens of every tenant (never their secrets); needs an admin token",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := output.format(cmd)
			if err != nil {
				return err
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			toks, err := c.Admin().ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			if format == outputJSON {
				if toks == nil {
					toks = []runnel.TokenInfo{}
				}
				return writeJSON(cmd.OutOrStdout(), map[string]any{"tokens": toks})
			}
			return printTokens(cmd.OutOrStdout(), toks, time.Now())
		},
	}
	flags.register(cmd)
	output.register(cmd)
	return cmd
}

func printTokens(out io.Writer, toks []runnel.TokenInfo, now time.Time) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTENANT\tKIND\tNAME\tCREATED\tEXPIRES\tSTATUS")
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, t := range toks {
		status := "valid"
		switch {
		case !t.RevokedAt.IsZero():
			status = "revoked " + stamp(t.RevokedAt)
		case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
			status = "expired"
		}
		name := strings.ReplaceAll(t.Name, "\t", " ")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Tenant, t.Kind, name, stamp(t.CreatedAt), stamp(t.ExpiresAt), status)
	}
	return tw.Flush()
}

func newTokenRevokeCommand() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "revoke TOKEN_ID",
		Short: "Revoke a token by id, and the browser tokens it minted; needs an admin token",
		Long: "Revoke a token by id (runnel token list shows them). Every engine node refuses it at once, its\n" +
			"live subscriptions end, and the browser tokens it minted are revoked with it. An admin token\n" +
			"cannot revoke itself: mint another with runnel token create --admin first.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := flags.client()
			if err != nil {
				return err
			}
			ids, err := c.Admin().RevokeToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			switch len(ids) {
			case 0:
				fmt.Fprintf(cmd.OutOrStdout(), "Token %s was already revoked.\n", args[0])
			case 1:
				fmt.Fprintf(cmd.OutOrStdout(), "Revoked token %s.\n", args[0])
			default:
				fmt.Fprintf(cmd.OutOrStdout(), "Revoked token %s and %d browser tokens it minted.\n", args[0], len(ids)-1)
			}
			return nil
		},
	}
	flags.register(cmd)
	return cmd
}
