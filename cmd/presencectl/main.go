// Command presencectl is the operator's and developer's companion to
// presenced: it mints tokens for a local daemon today, and is the home for
// further tools (cluster inspection, load generation) as subcommands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
)

// command is one subcommand. run gets the arguments after the subcommand's
// name and writes its result to stdout and diagnostics to stderr, so tests
// can drive it without a process.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

// commands is the dispatch table; a new subcommand is one entry here and one
// run function. It is filled in init because the usage text reads it.
var commands []command

func init() {
	commands = []command{
		{name: "token", summary: "mint a JWT the local presenced accepts", run: runToken},
		{name: "cluster", summary: "list the cluster's members as one node sees them (GET /admin/cluster)", run: runCluster},
		{name: "user", summary: "show a user as an admin sees it (GET /admin/users/{id}); set their visibility, close their sessions", run: runUser},
		{name: "health", summary: "exit 0 if a node answers 200 (default http://127.0.0.1:8000/readyz): the container health check", run: runHealth},
		{name: "webhook-listen", summary: "run a change-feed receiver that verifies signatures, dedupes and prints each event", run: runWebhookListen},
		{name: "bench", summary: "load generator: REST heartbeats, status changes, WebSocket sessions; delivery latency and server memory", run: runBench},
	}
}

// errUsage reports a usage error that has already been explained on stderr;
// it maps to exit code 2, as with the flag package.
var errUsage = errors.New("usage error")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and turns its outcome into an exit code:
// 0 success or help, 1 failure, 2 usage error.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == name {
			cmd = &commands[i]
			break
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "presencectl: unknown command %q\n\n", name)
		usage(stderr)
		return 2
	}
	err := cmd.run(args[1:], stdout, stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "presencectl %s: %v\n", name, err)
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, "Usage: presencectl <command> [flags]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprint(w, "\nRun 'presencectl <command> -h' for the command's flags.\n")
}

// newFlagSet gives every subcommand the same error handling: parse errors
// and -h are printed to stderr by the flag package and come back as errors
// for run to map to exit codes.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("presencectl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: presencectl %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and refuses stray positional arguments, which are
// almost always a mistyped flag.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage // the flag package has printed the error and usage
	}
	if fs.NArg() > 0 {
		return usageErrorf(fs, "unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// usageErrorf explains a usage error on the flag set's output and returns
// errUsage.
func usageErrorf(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(fs.Output(), "%s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return errUsage
}

// envOr reads a PRESENCE_* variable; empty counts as unset, as it does for
// the daemon's configuration.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
