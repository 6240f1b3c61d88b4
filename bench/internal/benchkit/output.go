package benchkit

import (
	"fmt"
	"time"
)

// KeepUsage is the usage of both benchmarks' -keep flag.
const KeepUsage = "keep the stack directory (component logs, dispatcher log) after the run"

// Step prints the start of a step, with the time.
func Step(format string, args ...any) {
	fmt.Printf("==> %s %s\n", time.Now().Format("15:04:05.0"), fmt.Sprintf(format, args...))
}

// Note prints a detail of the current step, indented.
func Note(format string, args ...any) { fmt.Printf("    "+format+"\n", args...) }

// indent is a writer that prints what it is given indented, for the stack's progress lines.
type indent struct{}

// Write prints b indented.
func (indent) Write(b []byte) (int, error) {
	fmt.Print("    " + string(b))
	return len(b), nil
}
