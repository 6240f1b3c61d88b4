package capacity

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
)

// window builds a CapacityWindow fixture.
func window(name, tz, start, end string, maxR int32, opts ...func(*v1alpha1.CapacityWindow)) v1alpha1.CapacityWindow {
	w := v1alpha1.CapacityWindow{Name: name, Timezone: tz, Start: start, End: end, MaxReplicaCount: maxR}
	for _, o := range opts {
		o(&w)
	}
	return w
}

func withMin(n int32) func(*v1alpha1.CapacityWindow) {
	return func(w *v1alpha1.CapacityWindow) { w.MinReplicaCount = ptr.To(n) }
}

func mustParse(t *testing.T, ws ...v1alpha1.CapacityWindow) []Window {
	t.Helper()
	out, errs := Parse(ws, field.NewPath("spec", "capacityWindows"))
	if len(errs) > 0 {
		t.Fatalf("Parse: %v", errs)
	}
	return out
}

func at(t *testing.T, tz, s string) time.Time {
	t.Helper()
	loc, err := time.LoadLocation(tz)
	if err != nil {
		t.Fatal(err)
	}
	v, err := time.ParseInLocation("2006-01-02 15:04:05", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestEvaluate(t *testing.T) {
	nightly := window("nightly", "Europe/Berlin", "0 1 * * *", "0 5 * * *", 200)
	overnight := window("overnight", "Etc/UTC", "0 22 * * *", "0 2 * * *", 50, withMin(5))
	office := window("office", "America/New_York", "0 9 * * 1-5", "0 17 * * 1-5", 20, withMin(4))
	weekend := window("weekend", "Etc/UTC", "0 18 * * 5", "0 6 * * 1", 80)
	leap := window("leap", "Etc/UTC", "0 0 29 2 *", "0 0 1 3 *", 500)
	quiet := window("quiet", "Etc/UTC", "0 12 * * *", "0 13 * * *", 1)
	specMin, specMax := ptr.To[int32](2), ptr.To[int32](10)

	tests := map[string]struct {
		windows        []v1alpha1.CapacityWindow
		specMin        *int32
		specMax        *int32
		now            time.Time
		wantMax        int32
		wantMin        int32
		wantMaxFrom    string
		wantMinFrom    string
		wantOpen       []string
		wantNext       string // Describe() of the next change
		wantNextAt     time.Time
		wantNilPointer bool // no window open and the spec left max unset
	}{
		"before the window: the spec's values": {
			windows: []v1alpha1.CapacityWindow{nightly}, specMin: specMin, specMax: specMax,
			now: at(t, "Europe/Berlin", "2026-12-03 00:59:59"), wantMax: 10, wantMin: 2,
			wantNext: "window nightly opens: max 10 -> 200", wantNextAt: at(t, "Europe/Berlin", "2026-12-03 01:00:00"),
		},
		"at the opening minute the window is open": {
			windows: []v1alpha1.CapacityWindow{nightly}, specMin: specMin, specMax: specMax,
			now: at(t, "Europe/Berlin", "2026-12-03 01:00:00"), wantMax: 200, wantMin: 2, wantMaxFrom: "nightly", wantOpen: []string{"nightly"},
			wantNext: "window nightly closes: max 200 -> 10", wantNextAt: at(t, "Europe/Berlin", "2026-12-03 05:00:00"),
		},
		"at the closing minute the window is closed": {
			windows: []v1alpha1.CapacityWindow{nightly}, specMin: specMin, specMax: specMax,
			now: at(t, "Europe/Berlin", "2026-12-03 05:00:00"), wantMax: 10, wantMin: 2,
			wantNext: "window nightly opens: max 10 -> 200", wantNextAt: at(t, "Europe/Berlin", "2026-12-04 01:00:00"),
		},
		"across midnight: open after midnight": {
			windows: []v1alpha1.CapacityWindow{overnight}, specMin: specMin, specMax: specMax,
			now: at(t, "Etc/UTC", "2026-12-04 01:30:00"), wantMax: 50, wantMin: 5, wantMaxFrom: "overnight", wantMinFrom: "overnight",
			wantOpen: []string{"overnight"}, wantNext: "window overnight closes: max 50 -> 10, min 5 -> 2", wantNextAt: at(t, "Etc/UTC", "2026-12-04 02:00:00"),
		},
		"across midnight: open before midnight": {
			windows: []v1alpha1.CapacityWindow{overnight}, specMin: specMin, specMax: specMax,
			now: at(t, "Etc/UTC", "2026-12-03 23:59:00"), wantMax: 50, wantMin: 5, wantMaxFrom: "overnight", wantMinFrom: "overnight",
			wantOpen: []string{"overnight"}, wantNext: "window overnight closes: max 50 -> 10, min 5 -> 2", wantNextAt: at(t, "Etc/UTC", "2026-12-04 02:00:00"),
		},
		"overlapping windows: the largest max and the largest min": {
			windows: []v1alpha1.CapacityWindow{overnight, weekend}, specMin: specMin, specMax: specMax,
			now:     at(t, "Etc/UTC", "2026-12-05 23:00:00"), // a Saturday night: both open
			wantMax: 80, wantMin: 5, wantMaxFrom: "weekend", wantMinFrom: "overnight", wantOpen: []string{"overnight", "weekend"},
			wantNext: "window overnight closes: min 5 -> 2", wantNextAt: at(t, "Etc/UTC", "2026-12-06 02:00:00"),
		},
		"a window longer than a day (Friday evening to Monday morning)": {
			windows: []v1alpha1.CapacityWindow{weekend}, specMin: specMin, specMax: specMax,
			now: at(t, "Etc/UTC", "2026-12-06 12:00:00"), wantMax: 80, wantMin: 2, wantMaxFrom: "weekend", wantOpen: []string{"weekend"},
			wantNext: "window weekend closes: max 80 -> 10", wantNextAt: at(t, "Etc/UTC", "2026-12-07 06:00:00"),
		},
		"Feb 29 opens only in leap years": {
			windows: []v1alpha1.CapacityWindow{leap}, specMin: specMin, specMax: specMax,
			now: at(t, "Etc/UTC", "2027-03-10 00:00:00"), wantMax: 10, wantMin: 2,
			wantNext: "window leap opens: max 10 -> 500", wantNextAt: at(t, "Etc/UTC", "2028-02-29 00:00:00"),
		},
		"Feb 29 open": {
			windows: []v1alpha1.CapacityWindow{leap}, specMin: specMin, specMax: specMax,
			now: at(t, "Etc/UTC", "2028-02-29 13:00:00"), wantMax: 500, wantMin: 2, wantMaxFrom: "leap", wantOpen: []string{"leap"},
			wantNext: "window leap closes: max 500 -> 10", wantNextAt: at(t, "Etc/UTC", "2028-03-01 00:00:00"),
		},
		"a window may lower capacity, and lowers the spec min with it": {
			windows: []v1alpha1.CapacityWindow{quiet}, specMin: specMin, specMax: specMax,
			now: at(t, "Etc/UTC", "2026-12-03 12:30:00"), wantMax: 1, wantMin: 1, wantMaxFrom: "quiet", wantOpen: []string{"quiet"},
			wantNext: "window quiet closes: max 1 -> 10, min 1 -> 2", wantNextAt: at(t, "Etc/UTC", "2026-12-03 13:00:00"),
		},
		"office hours in New York, evaluated from UTC": {
			windows: []v1alpha1.CapacityWindow{office}, specMax: specMax,
			now:     at(t, "Etc/UTC", "2026-12-03 14:30:00"), // 09:30 EST, a Thursday
			wantMax: 20, wantMin: 4, wantMaxFrom: "office", wantMinFrom: "office", wantOpen: []string{"office"},
			wantNext: "window office closes: max 20 -> 10, min 4 -> 0", wantNextAt: at(t, "America/New_York", "2026-12-03 17:00:00"),
		},
		"no windows: the spec's pointers, unset max stays unset": {
			now: at(t, "Etc/UTC", "2026-12-03 14:30:00"), wantMax: 100, wantNilPointer: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ws := mustParse(t, tc.windows...)
			ev := Evaluate(ws, tc.specMin, tc.specMax, tc.now)
			got := struct {
				Max, Min         int32
				MaxFrom, MinFrom string
				Open             []string
			}{ev.MaxValue(), ev.MinValue(), ev.MaxFrom, ev.MinFrom, ev.Open}
			want := struct {
				Max, Min         int32
				MaxFrom, MinFrom string
				Open             []string
			}{tc.wantMax, tc.wantMin, tc.wantMaxFrom, tc.wantMinFrom, tc.wantOpen}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Evaluate() limits (-want +got):\n%s", diff)
			}
			if tc.wantNilPointer && ev.Max != nil {
				t.Errorf("Max = %d, want nil (KEDA's default applies)", *ev.Max)
			}
			if tc.wantNext == "" {
				if ev.Next != nil {
					t.Errorf("Next = %+v, want none", ev.Next)
				}
				return
			}
			if ev.Next == nil {
				t.Fatalf("Next = nil, want %q", tc.wantNext)
			}
			if got := ev.Next.Describe(); got != tc.wantNext {
				t.Errorf("Next.Describe() = %q, want %q", got, tc.wantNext)
			}
			if !ev.Next.At.Equal(tc.wantNextAt) {
				t.Errorf("Next.At = %s, want %s", ev.Next.At, tc.wantNextAt)
			}
		})
	}
}

// DST in Europe/Berlin: on 2026-03-29 02:00 does not exist (clocks go 02:00 -> 03:00); on 2026-10-25 02:00-03:00
// happens twice.
func TestEvaluateAcrossDST(t *testing.T) {
	berlin := func(s string) time.Time { return at(t, "Europe/Berlin", s) }
	tests := map[string]struct {
		window   v1alpha1.CapacityWindow
		now      time.Time
		wantOpen bool
		wantNext time.Time
	}{
		"spring forward: a window over the lost hour is open after it": {
			window: window("w", "Europe/Berlin", "0 1 * * *", "0 4 * * *", 9),
			now:    berlin("2026-03-29 03:30:00"), wantOpen: true, wantNext: berlin("2026-03-29 04:00:00"),
		},
		"spring forward: the window lasts one hour less in real time": {
			window: window("w", "Europe/Berlin", "0 1 * * *", "0 4 * * *", 9),
			now:    berlin("2026-03-29 01:00:00"), wantOpen: true, wantNext: berlin("2026-03-29 01:00:00").Add(2 * time.Hour),
		},
		"fall back: a window over the repeated hour closes at the wall-clock end": {
			window: window("w", "Europe/Berlin", "0 1 * * *", "0 4 * * *", 9),
			now:    berlin("2026-10-25 02:30:00"), wantOpen: true, wantNext: berlin("2026-10-25 04:00:00"),
		},
		"fall back: the window lasts one hour more in real time": {
			window: window("w", "Europe/Berlin", "0 1 * * *", "0 4 * * *", 9),
			now:    berlin("2026-10-25 01:00:00"), wantOpen: true, wantNext: berlin("2026-10-25 01:00:00").Add(4 * time.Hour),
		},
		"spring forward: a start in the lost hour does not open the window that day (not KEDA's open-from-the-previous-end)": {
			window: window("w", "Europe/Berlin", "30 2 * * *", "0 6 * * *", 9),
			now:    berlin("2026-03-29 05:00:00"), wantOpen: false, wantNext: berlin("2026-03-30 02:30:00"),
		},
		"an end that fires more often than the start: open only from the start to the next end": {
			window: window("w", "Etc/UTC", "0 1 * * 6", "0 5 * * *", 9), // start Saturdays, end daily
			now:    at(t, "Etc/UTC", "2026-12-08 03:00:00"), wantOpen: false, wantNext: at(t, "Etc/UTC", "2026-12-12 01:00:00"),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ws := mustParse(t, tc.window)
			ev := Evaluate(ws, nil, ptr.To[int32](1), tc.now)
			if got := len(ev.Open) == 1; got != tc.wantOpen {
				t.Errorf("open = %v, want %v", got, tc.wantOpen)
			}
			if ev.Next == nil || !ev.Next.At.Equal(tc.wantNext) {
				t.Errorf("Next = %+v, want at %s", ev.Next, tc.wantNext)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := map[string]struct {
		window    v1alpha1.CapacityWindow
		wantField string
		wantIn    string
	}{
		"unknown time zone": {
			window: window("w", "Mars/Olympus", "0 1 * * *", "0 5 * * *", 5), wantField: "spec.capacityWindows[0].timezone", wantIn: "not an IANA time zone",
		},
		"bad start": {
			window: window("w", "Etc/UTC", "0 25 * * *", "0 5 * * *", 5), wantField: "spec.capacityWindows[0].start", wantIn: "5-field cron",
		},
		"seconds field": {
			window: window("w", "Etc/UTC", "0 0 1 * * *", "0 5 * * *", 5), wantField: "spec.capacityWindows[0].start", wantIn: "5-field cron",
		},
		"start equals end": {
			window: window("w", "Etc/UTC", "0 5 * * *", "0  5 * * *", 5), wantField: "spec.capacityWindows[0].end", wantIn: "must differ from start",
		},
		"TZ prefix names the window's own field": {
			window: window("w", "Etc/UTC", "TZ=UTC 0 5 * * *", "0 6 * * *", 5), wantField: "spec.capacityWindows[0].start", wantIn: "set timezone",
		},
		"never fires": {
			window: window("w", "Etc/UTC", "0 0 30 2 *", "0 6 * * *", 5), wantField: "spec.capacityWindows[0].start", wantIn: "never fires",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, errs := Parse([]v1alpha1.CapacityWindow{tc.window}, field.NewPath("spec", "capacityWindows"))
			if len(errs) != 1 {
				t.Fatalf("Parse() errors = %v, want one", errs)
			}
			if errs[0].Field != tc.wantField || !strings.Contains(errs[0].Error(), tc.wantIn) {
				t.Errorf("Parse() error = %q on %s, want %q on %s", errs[0].Error(), errs[0].Field, tc.wantIn, tc.wantField)
			}
		})
	}
}

func TestReason(t *testing.T) {
	ws := mustParse(t, window("nightly-etl", "Europe/Berlin", "0 1 * * *", "0 5 * * *", 200, withMin(3)))
	ev := Evaluate(ws, nil, ptr.To[int32](10), at(t, "Europe/Berlin", "2026-12-03 02:00:00"))
	want := "window nightly-etl open until 2026-12-03 05:00 Europe/Berlin: max 200, min 3"
	if got := ev.Reason(ws); got != want {
		t.Errorf("Reason() = %q, want %q", got, want)
	}
	if got := Evaluate(ws, nil, ptr.To[int32](10), at(t, "Europe/Berlin", "2026-12-03 06:00:00")).Reason(ws); got != "" {
		t.Errorf("Reason() outside the window = %q, want empty", got)
	}
}

func TestClosedAndOpened(t *testing.T) {
	ws := mustParse(t,
		window("drainy", "Etc/UTC", "0 1 * * *", "0 5 * * *", 5),
		window("stoppy", "Etc/UTC", "0 2 * * *", "0 5 * * *", 5, func(w *v1alpha1.CapacityWindow) { w.OnClose = v1alpha1.OnCloseTerminate }),
	)
	tests := map[string]struct {
		prevOpen      []string
		nowOpen       []string
		wantClosed    []string
		wantTerminate bool
		wantOpened    []string
	}{
		"nothing changed":          {prevOpen: []string{"drainy"}, nowOpen: []string{"drainy"}},
		"a draining window closed": {prevOpen: []string{"drainy"}, wantClosed: []string{"drainy"}},
		"a terminating window closed": {
			prevOpen: []string{"drainy", "stoppy"}, nowOpen: []string{"drainy"}, wantClosed: []string{"stoppy"}, wantTerminate: true,
		},
		"a window removed from the spec is not a close": {prevOpen: []string{"gone"}},
		"opened": {nowOpen: []string{"drainy", "stoppy"}, wantOpened: []string{"drainy", "stoppy"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			closed, terminate := Closed(ws, tc.prevOpen, Limits{Open: tc.nowOpen})
			if diff := cmp.Diff(tc.wantClosed, closed); diff != "" || terminate != tc.wantTerminate {
				t.Errorf("Closed() = %v, %v; want %v, %v", closed, terminate, tc.wantClosed, tc.wantTerminate)
			}
			if diff := cmp.Diff(tc.wantOpened, Opened(tc.prevOpen, Limits{Open: tc.nowOpen})); diff != "" {
				t.Errorf("Opened() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExcess(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 1, 0, 0, 0, time.UTC)
	jobs := []Unfinished{
		{Name: "old-running", Created: t0},
		{Name: "new-running", Created: t0.Add(time.Minute)},
		{Name: "pending", Created: t0, Pending: true},
		{Name: "mid-running", Created: t0.Add(30 * time.Second)},
	}
	tests := map[string]struct {
		keep int64
		want []string
	}{
		"keep all":                   {keep: 4},
		"keep more than there are":   {keep: 10},
		"pending first":              {keep: 3, want: []string{"pending"}},
		"then the newest":            {keep: 1, want: []string{"pending", "new-running", "mid-running"}},
		"keep none":                  {keep: 0, want: []string{"pending", "new-running", "mid-running", "old-running"}},
		"a negative keep keeps none": {keep: -1, want: []string{"pending", "new-running", "mid-running", "old-running"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Excess(jobs, tc.keep)); diff != "" {
				t.Errorf("Excess() (-want +got):\n%s", diff)
			}
		})
	}
}
