package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel"
)

// newStreamsCommand: standalone durable streams (the Durable Streams
// protocol at /v1/stream/NAME), through the Go SDK's c.Streams().
func newStreamsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "streams",
		Short: "Create, append to, read, follow, close and delete standalone durable streams",
	}
	cmd.AddCommand(newStreamsCreateCommand(), newStreamsAppendCommand(), newStreamsReadCommand(),
		newStreamsInfoCommand(), newStreamsCloseCommand(), newStreamsDeleteCommand(), newStreamsListCommand())
	return cmd
}

func newStreamsCreateCommand() *cobra.Command {
	var (
		flags       clientFlags
		contentType string
		ttl         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a stream (nothing happens if it exists with the same settings)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl < 0 || (cmd.Flags().Changed("ttl") && ttl < time.Second) {
				return fmt.Errorf("invalid --ttl %s: want a duration of at least 1s, such as 24h", ttl)
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			opts := []runnel.StreamOption{runnel.WithContentType(contentType)}
			if ttl > 0 {
				opts = append(opts, runnel.WithTTL(ttl))
			}
			return c.Streams().Create(cmd.Context(), args[0], opts...)
		},
	}
	flags.register(cmd)
	cmd.Flags().StringVar(&contentType, "content-type", "text/plain", "the stream's content type (application/json: every append is a JSON value)")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "delete the stream after it was not read or written for this long (default: never)")
	return cmd
}

func newStreamsAppendCommand() *cobra.Command {
	var (
		flags  clientFlags
		close_ bool
	)
	cmd := &cobra.Command{
		Use:   "append NAME [DATA...]",
		Short: "Append DATA (the arguments joined by spaces, or stdin when there are none) as one message",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var data []byte
			if len(args) > 1 {
				data = []byte(strings.Join(args[1:], " "))
			} else {
				b, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return fmt.Errorf("read stdin: %w", err)
				}
				data = b
			}
			c, err := flags.client()
			if err != nil {
				return err
			}
			var opts []runnel.AppendOption
			if close_ {
				opts = append(opts, runnel.AndClose())
			}
			next, err := c.Streams().Append(cmd.Context(), args[0], data, opts...)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "offset", next)
			return nil
		},
	}
	flags.register(cmd)
	cmd.Flags().BoolVar(&close_, "close", false, "close the stream with this append")
	return cmd
}

func newStreamsReadCommand() *cobra.Command {
	var (
		flags  clientFlags
		from   string
		follow bool
	)
	cmd := &cobra.Command{
		Use:   "read NAME",
		Short: "Print a stream's messages from an offset; --follow waits for more until the stream is closed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := flags.client()
			if err != nil {
				return err
			}
			out, streams := cmd.OutOrStdout(), c.Streams()
			if !follow {
				chunk, err := streams.Read(cmd.Context(), args[0], from)
				if err != nil {
					return err
				}
				if _, err := out.Write(chunk.Data); err != nil {
					return err
				}
				fmt.Fprintln(cmd.ErrOrStderr(), "next offset", chunk.Next)
				return nil
			}
			for chunk, err := range streams.Follow(cmd.Context(), args[0], from) {
				if err != nil {
					if cmd.Context().Err() != nil {
						return nil // interrupted
					}
					return err
				}
				if _, err := out.Write(chunk.Data); err != nil {
					return err
				}
			}
			return nil
		},
	}
	flags.register(cmd)
	cmd.Flags().StringVar(&from, "from", runnel.FromBeginning, "offset to read from (-1: the beginning; now: only what comes next; or an offset printed earlier)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep reading as messages are appended, until the stream is closed")
	return cmd
}

func newStreamsInfoCommand() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "info NAME",
		Short: "Print a stream's content type, tail offset and whether it is closed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := flags.client()
			if err != nil {
				return err
			}
			info, err := c.Streams().Head(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "name %s\ncontent-type %s\ntail %s\nclosed %t\n", info.Name, info.ContentType, info.Tail, info.Closed)
			return nil
		},
	}
	flags.register(cmd)
	return cmd
}

func newStreamsCloseCommand() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "close NAME",
		Short: "Close a stream: readers get everything appended, then the end",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := flags.client()
			if err != nil {
				return err
			}
			return c.Streams().Close(cmd.Context(), args[0])
		},
	}
	flags.register(cmd)
	return cmd
}

func newStreamsDeleteCommand() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a stream and its messages",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := flags.client()
			if err != nil {
				return err
			}
			return c.Streams().Delete(cmd.Context(), args[0])
		},
	}
	flags.register(cmd)
	return cmd
}

func newStreamsListCommand() *cobra.Command {
	var (
		flags  clientFlags
		prefix string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the tenant's streams: name, content type, whether closed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := flags.client()
			if err != nil {
				return err
			}
			infos, err := c.Streams().List(cmd.Context(), prefix)
			if err != nil {
				return err
			}
			for _, in := range infos {
				state := "open"
				if in.Closed {
					state = "closed"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", in.Name, in.ContentType, state)
			}
			return nil
		},
	}
	flags.register(cmd)
	cmd.Flags().StringVar(&prefix, "prefix", "", "only streams whose name starts with this")
	return cmd
}
