package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/cmd/kubectl-dispatch/internal/explain"
)

// clearScreen moves the cursor home and clears a terminal.
const clearScreen = "\033[H\033[2J"

func newWatchCommand(a *app) *cobra.Command {
	var interval time.Duration
	var once bool
	cmd := &cobra.Command{
		Use:   "watch SCALEDJOB",
		Short: "Show the ScaledJob's backlog, Jobs by state and last decision, refreshed every --interval",
		Long: "watch re-reads the ScaledJob, its Jobs and pods every --interval and shows the triggers' backlogs, the Jobs " +
			"by state, what blocks creation and the last decision. On a terminal the view is redrawn in place; " +
			"otherwise each refresh is appended as plain text. Stop it with Ctrl-C.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval <= 0 {
				return fmt.Errorf("--interval %s must be positive", interval)
			}
			c, ns, err := a.newClient(a)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			w := watcher{c: c, key: types.NamespacedName{Namespace: ns, Name: args[0]}, out: a.out, terminal: isTerminal(a.out), now: time.Now}
			return w.run(ctx, interval, once)
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "time between refreshes")
	cmd.Flags().BoolVar(&once, "once", false, "print the view once and exit")
	return cmd
}

// watcher redraws the summary of one ScaledJob.
type watcher struct {
	c        client.Client
	key      types.NamespacedName
	out      io.Writer
	terminal bool
	now      func() time.Time
}

func (w *watcher) run(ctx context.Context, interval time.Duration, once bool) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for first := true; ; first = false {
		if err := w.refresh(ctx, first); err != nil {
			return err
		}
		if once {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// refresh reads the objects and prints one view; a read error is shown in the view on a terminal (the next
// refresh may succeed) and returned otherwise.
func (w *watcher) refresh(ctx context.Context, first bool) error {
	var buf bytes.Buffer
	switch {
	case w.terminal:
		buf.WriteString(clearScreen)
	case !first:
		buf.WriteString("\n")
	}
	in, err := readInput(ctx, w.c, w.key)
	if err != nil {
		if !w.terminal {
			return err
		}
		fmt.Fprintf(&buf, "%s: %v\n", w.now().UTC().Format(time.RFC3339), err)
	} else if err := explain.PrintSummary(&buf, explain.Explain(in), w.now()); err != nil {
		return err
	}
	_, err = w.out.Write(buf.Bytes())
	return err
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
