package dispatch

import (
	"testing"
	"time"
)

func TestExtraReadWait(t *testing.T) {
	cases := map[string]struct {
		sinceLast time.Duration
		urgent    bool
		want      time.Duration
	}{
		"a finish long after the last extra read waits for the batch": {sinceLast: time.Hour, want: finishBatch},
		"a finish soon after one waits for the next second":           {sinceLast: 300 * time.Millisecond, want: 700 * time.Millisecond},
		"a finish just before the second is up still waits the batch": {sinceLast: 900 * time.Millisecond, want: finishBatch},
		"an unpause long after reads at once":                         {sinceLast: time.Hour, urgent: true},
		"an unpause soon after waits for the second":                  {sinceLast: 300 * time.Millisecond, urgent: true, want: 700 * time.Millisecond},
		"the first extra read ever (no previous one)":                 {sinceLast: time.Since(time.Time{}), want: finishBatch},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := extraReadWait(tc.sinceLast, tc.urgent); got != tc.want {
				t.Errorf("extraReadWait(%v, %v) = %v, want %v", tc.sinceLast, tc.urgent, got, tc.want)
			}
		})
	}
}
