package main

import (
	"errors"
	"fmt"
	"os"
)

// defaultResultPath is the container's termination-message file: what is written there shows in the pod's status
// (containerStatuses[].state.terminated.message), so the result can be read without the logs.
const defaultResultPath = "/dev/termination-log"

func main() {
	os.Exit(run())
}

func run() int {
	path := os.Getenv("KUBEDISPATCH_MESSAGE_PATH")
	if path == "" {
		fmt.Fprintln(os.Stderr, "worker: KUBEDISPATCH_MESSAGE_PATH is not set: run me as a kubedispatch message-mode Job")
		return 2
	}
	body, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "worker: reading the message: %v\n", err)
		return 2
	}
	o := Process(body, os.Getenv)
	if err := o.write(os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "worker: %v\n", err)
	}
	if err := writeResult(os.Getenv("WORKER_RESULT_PATH"), o.Result); err != nil {
		fmt.Fprintf(os.Stderr, "worker: writing the result: %v\n", err)
	}
	return o.Code
}

// writeResult writes the result line to path, or to the termination-message file when path is empty and that
// file exists (it does in a Kubernetes container; a read-only root file system does not stop it).
func writeResult(path, result string) error {
	if path == "" {
		if _, err := os.Stat(defaultResultPath); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		path = defaultResultPath
	}
	if err := os.WriteFile(path, []byte(result+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
