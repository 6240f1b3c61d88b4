package apilimit

import (
	"fmt"
	"strconv"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
)

// Limits of the API server, in bytes.
const (
	// EventNote is the longest note of an events.k8s.io/v1 Event (NoteLengthLimit in the API server's event
	// validation). A longer note makes the API server refuse the whole event.
	EventNote = 1024
	// ConditionMessage is the longest message of a metav1.Condition (its +kubebuilder:validation:MaxLength and
	// the API server's condition validation).
	ConditionMessage = 32 * 1024
)

// Truncate returns s when it has at most limit bytes. Otherwise it cuts s at a UTF-8 character boundary and appends
// "… (N more bytes)", N being how many bytes were cut, so that the result has at most limit bytes and never ends in
// part of a character. A limit too small for the marker cuts without it.
func Truncate(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	if limit <= 0 {
		return ""
	}
	// The marker's number has at most as many digits as len(s); with the cut known, it may have fewer, which
	// leaves room for a few more bytes of s (and a cut that is smaller still).
	room := limit - len(marker(len(s)))
	if room < 0 {
		return s[:boundary(s, limit)]
	}
	keep := boundary(s, room)
	if more := boundary(s, limit-len(marker(len(s)-keep))); more > keep {
		keep = more
	}
	return s[:keep] + marker(len(s)-keep)
}

func marker(cut int) string { return "… (" + strconv.Itoa(cut) + " more bytes)" }

// boundary returns the largest n <= max such that s[:n] ends on a character boundary of s.
func boundary(s string, max int) int {
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return n
}

// Recorder returns an EventRecorder that truncates every note to EventNote bytes before handing it to rec, so that
// a long error still leaves an event.
func Recorder(rec events.EventRecorder) events.EventRecorder {
	if l, ok := rec.(limited); ok {
		return l
	}
	return limited{rec}
}

type limited struct{ events.EventRecorder }

func (l limited) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...interface{}) {
	l.EventRecorder.Eventf(regarding, related, eventtype, reason, action, "%s", Truncate(fmt.Sprintf(note, args...), EventNote))
}
