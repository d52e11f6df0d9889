package cli

import (
	"io"
	"os"
	"strconv"

	"golang.org/x/term"
)

// terminalWidth returns the width of w when w is an interactive terminal
// that understands ANSI cursor movement, and ok=false otherwise (a pipe, a
// file, /dev/null, a test buffer, or TERM=dumb). Output that is redrawn in
// place is only written where ok is true; everywhere else the CLI writes
// plain lines.
func terminalWidth(w io.Writer) (width int, ok bool) {
	f, isFile := w.(*os.File)
	if !isFile || !term.IsTerminal(int(f.Fd())) || os.Getenv("TERM") == "dumb" {
		return 0, false
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil || width <= 0 {
		// A terminal that does not report its size: COLUMNS, else the
		// classic 80 columns.
		width = 80
		if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
			width = n
		}
	}
	return width, true
}

// isTerminal reports whether w is an interactive terminal.
func isTerminal(w io.Writer) bool {
	_, ok := terminalWidth(w)
	return ok
}
