package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// maxShown is how much of the body is printed.
const maxShown = 1024

// Outcome is what the worker did with one body: the lines it prints, the result line and its exit code.
type Outcome struct {
	// Lines go to stdout, in order.
	Lines []string
	// Result is the one-line summary written to the result file.
	Result string
	// Code is the exit code: 0 for success, 1 for a requested failure.
	Code int
}

// Process is the worker's work on a message body; getenv reads the environment (os.Getenv in main).
func Process(body []byte, getenv func(string) string) Outcome {
	sum := sha256.Sum256(body)
	hexSum := hex.EncodeToString(sum[:])
	o := Outcome{Lines: []string{fmt.Sprintf("sha256=%s bytes=%d", hexSum, len(body))}}
	for _, k := range []string{"KUBEDISPATCH_MESSAGE_ID", "KUBEDISPATCH_DELIVERY", "KUBEDISPATCH_QUEUE"} {
		if v := getenv(k); v != "" {
			o.Lines = append(o.Lines, k+"="+v)
		}
	}
	o.Lines = append(o.Lines, "body: "+shown(body))
	if why := failReason(body, getenv); why != "" {
		o.Lines = append(o.Lines, "failing on purpose: "+why)
		o.Result = fmt.Sprintf("result=failed sha256=%s reason=%q", hexSum, why)
		o.Code = 1
		return o
	}
	o.Result = fmt.Sprintf("result=ok sha256=%s bytes=%d", hexSum, len(body))
	o.Lines = append(o.Lines, o.Result)
	return o
}

// failReason says why the worker must fail, or "" when it must not.
func failReason(body []byte, getenv func(string) string) string {
	if getenv("WORKER_FAIL") == "1" {
		return "WORKER_FAIL=1"
	}
	var obj struct {
		Fail bool `json:"fail"`
	}
	if json.Unmarshal(body, &obj) == nil && obj.Fail {
		return `the message body has "fail": true`
	}
	return ""
}

// shown is the body as printed: cut at maxShown bytes on a rune boundary, control characters escaped so the body
// stays on one log line.
func shown(body []byte) string {
	cut := body
	suffix := ""
	if len(cut) > maxShown {
		cut = cut[:maxShown]
		for len(cut) > 0 && !utf8.Valid(cut) {
			cut = cut[:len(cut)-1]
		}
		suffix = fmt.Sprintf("... (%d more bytes)", len(body)-len(cut))
	}
	q := fmt.Sprintf("%q", cut)
	return strings.TrimSuffix(strings.TrimPrefix(q, `"`), `"`) + suffix
}

// write prints o's lines to w.
func (o Outcome) write(w io.Writer) error {
	for _, l := range o.Lines {
		if _, err := fmt.Fprintln(w, l); err != nil {
			return fmt.Errorf("printing the outcome: %w", err)
		}
	}
	return nil
}
