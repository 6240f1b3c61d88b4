package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestProcess(t *testing.T) {
	// sha256 of `{"order":1}`.
	cases := map[string]struct {
		body     string
		env      map[string]string
		wantCode int
		wantHas  []string
		wantNot  []string
	}{
		"success prints hash, size and body": {
			body:     `{"order":1}`,
			env:      map[string]string{"KUBEDISPATCH_MESSAGE_ID": "m-1", "KUBEDISPATCH_DELIVERY": "1"},
			wantCode: 0,
			wantHas:  []string{"bytes=11", `body: {\"order\":1}`, "KUBEDISPATCH_MESSAGE_ID=m-1", "KUBEDISPATCH_DELIVERY=1", "result=ok"},
			wantNot:  []string{"failing"},
		},
		"fail true in the JSON body": {
			body:     `{"fail": true, "n": 3}`,
			wantCode: 1,
			wantHas:  []string{`failing on purpose: the message body has "fail": true`},
			wantNot:  []string{"result=ok"},
		},
		"fail false does not fail": {
			body:     `{"fail": false}`,
			wantCode: 0,
		},
		"WORKER_FAIL=1 fails any body": {
			body:     "plain text",
			env:      map[string]string{"WORKER_FAIL": "1"},
			wantCode: 1,
			wantHas:  []string{"failing on purpose: WORKER_FAIL=1"},
		},
		"not JSON is fine": {
			body:     "not json, line\nbreak",
			wantCode: 0,
			wantHas:  []string{`body: not json, line\nbreak`},
		},
		"empty body": {
			body:     "",
			wantCode: 0,
			wantHas:  []string{"sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 bytes=0"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			o := Process([]byte(tc.body), env(tc.env))
			if o.Code != tc.wantCode {
				t.Errorf("code = %d, want %d", o.Code, tc.wantCode)
			}
			if !strings.HasPrefix(o.Lines[0], "sha256=") {
				t.Errorf("first line %q does not start with sha256=", o.Lines[0])
			}
			out := strings.Join(o.Lines, "\n")
			for _, s := range tc.wantHas {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.wantNot {
				if strings.Contains(out, s) {
					t.Errorf("output has %q:\n%s", s, out)
				}
			}
			if !strings.Contains(o.Result, strings.TrimPrefix(strings.Fields(o.Lines[0])[0], "sha256=")) {
				t.Errorf("result %q lacks the body's hash", o.Result)
			}
		})
	}
}

func TestShownCutsLongBodiesOnARuneBoundary(t *testing.T) {
	body := []byte(strings.Repeat("a", maxShown-1) + "é" + "tail")
	got := shown(body)
	want := strings.Repeat("a", maxShown-1) + "... (6 more bytes)"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("shown (-want +got):\n%s", diff)
	}
}

func TestWriteResult(t *testing.T) {
	path := filepath.Join(t.TempDir(), "result")
	if err := writeResult(path, "result=ok"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "result=ok\n" {
		t.Errorf("result file = %q", b)
	}
}
