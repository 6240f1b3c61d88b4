package apilimit

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
)

func TestTruncate(t *testing.T) {
	tests := map[string]struct {
		s     string
		limit int
		want  string
	}{
		"short":                {s: "abc", limit: 10, want: "abc"},
		"exactly the limit":    {s: "abcdefghij", limit: 10, want: "abcdefghij"},
		"empty":                {s: "", limit: 0, want: ""},
		"zero limit":           {s: "abc", limit: 0, want: ""},
		"one byte over":        {s: strings.Repeat("a", 31), limit: 30, want: strings.Repeat("a", 11) + "… (20 more bytes)"},
		"says how much is cut": {s: strings.Repeat("a", 1000), limit: 100, want: strings.Repeat("a", 80) + "… (920 more bytes)"},
		"cuts at a character boundary": {
			// 80 bytes of room: 26 three-byte characters (78 bytes), not 26 and two thirds.
			s: strings.Repeat("€", 100), limit: 100, want: strings.Repeat("€", 26) + "… (222 more bytes)",
		},
		"limit too small for the marker": {s: "ab€cd", limit: 4, want: "ab"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := Truncate(tc.s, tc.limit)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Truncate() mismatch (-want +got):\n%s", diff)
			}
			if len(got) > max(tc.limit, 0) {
				t.Errorf("Truncate() has %d bytes, limit %d", len(got), tc.limit)
			}
			if !utf8.ValidString(got) {
				t.Errorf("Truncate() = %q is not valid UTF-8", got)
			}
		})
	}
}

func FuzzTruncate(f *testing.F) {
	f.Add("hello", 3)
	f.Add(strings.Repeat("€", 500), EventNote)
	f.Add("\xff\xfe€abc", 4)
	f.Fuzz(func(t *testing.T, s string, limit int) {
		got := Truncate(s, limit)
		if len(got) > max(limit, 0) && got != s {
			t.Fatalf("Truncate(%d bytes, %d) has %d bytes", len(s), limit, len(got))
		}
		if len(s) <= limit && got != s {
			t.Fatalf("Truncate changed a string within the limit")
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("Truncate(%q, %d) = %q is not valid UTF-8", s, limit, got)
		}
	})
}

func TestRecorderTruncatesNotes(t *testing.T) {
	fake := events.NewFakeRecorder(10)
	rec := Recorder(fake)
	rec.Eventf(&corev1.Pod{}, nil, corev1.EventTypeWarning, "InvalidSpec", "Validate", "%s: %s", "spec", strings.Repeat("x", 5000))
	rec.Eventf(&corev1.Pod{}, nil, corev1.EventTypeNormal, "JobsCreated", "CreateJobs", "Created %d Job(s)", 3)
	long, short := <-fake.Events, <-fake.Events
	// The fake recorder writes "<type> <reason> <note>".
	note := strings.TrimPrefix(long, "Warning InvalidSpec ")
	if len(note) != EventNote || !strings.HasPrefix(note, "spec: xxx") || !strings.HasSuffix(note, "x… (4003 more bytes)") {
		t.Errorf("long note = %d bytes %q..., want %d bytes ending in %q", len(note), note[:20], EventNote, "… (4003 more bytes)")
	}
	if want := "Normal JobsCreated Created 3 Job(s)"; short != want {
		t.Errorf("short event = %q, want %q", short, want)
	}
	if Recorder(rec) != rec {
		t.Error("Recorder wraps an already limited recorder again")
	}
}
