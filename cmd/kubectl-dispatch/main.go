package main

import (
	"fmt"
	"os"
)

func main() {
	cmd := newRootCommand(newApp(os.Stdin, os.Stdout, os.Stderr))
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
