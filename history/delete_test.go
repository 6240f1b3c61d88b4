package history

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// errInjected is the API failure the fake returns for Jobs listed in failDelete.
var errInjected = errors.New("injected: etcd unavailable")

// deleteRecorder intercepts Delete calls: it records each call's name and propagation policy and fails
// the names in failDelete.
type deleteRecorder struct {
	mu           sync.Mutex
	failDelete   map[string]bool
	calls        []string
	propagations []metav1.DeletionPropagation
}

func (r *deleteRecorder) funcs() interceptor.Funcs {
	return interceptor.Funcs{
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			o := &client.DeleteOptions{}
			o.ApplyOptions(opts)
			r.mu.Lock()
			r.calls = append(r.calls, obj.GetName())
			if o.PropagationPolicy == nil {
				r.propagations = append(r.propagations, "<unset>")
			} else {
				r.propagations = append(r.propagations, *o.PropagationPolicy)
			}
			fail := r.failDelete[obj.GetName()]
			r.mu.Unlock()
			if fail {
				return errInjected
			}
			return c.Delete(ctx, obj, opts...)
		},
	}
}

func TestDeleterDelete(t *testing.T) {
	finishedJobs := func(names ...string) []*jobWrapper {
		out := make([]*jobWrapper, 0, len(names))
		for i, n := range names {
			out = append(out, job(n).succeededAt(at(i)))
		}
		return out
	}
	cases := map[string]struct {
		stored      []*jobWrapper // Jobs present in the API
		toDelete    []string      // Jobs passed to Delete, in order
		failDelete  map[string]bool
		cancelled   bool
		wantDeleted int
		wantErr     []error // each must match errors.Is
		wantErrText []string
		wantCalls   []string
		wantLeft    []string // Jobs left in the API afterwards
	}{
		"deletes every Job": {
			stored:      finishedJobs("a", "b", "c"),
			toDelete:    []string{"a", "b", "c"},
			wantDeleted: 3,
			wantCalls:   []string{"a", "b", "c"},
		},
		"NotFound is ignored and not counted": {
			stored:      finishedJobs("a", "c"),
			toDelete:    []string{"a", "gone", "c"},
			wantDeleted: 2,
			wantCalls:   []string{"a", "gone", "c"},
		},
		"other errors are joined and the rest still deleted": {
			stored:      finishedJobs("a", "b", "c", "d"),
			toDelete:    []string{"a", "b", "c", "d"},
			failDelete:  map[string]bool{"a": true, "c": true},
			wantDeleted: 2,
			wantErr:     []error{errInjected},
			wantErrText: []string{"deleting job ns/a: " + errInjected.Error(), "deleting job ns/c: " + errInjected.Error()},
			wantCalls:   []string{"a", "b", "c", "d"},
			wantLeft:    []string{"a", "c"},
		},
		"only touches the given Jobs": {
			stored:      finishedJobs("a", "keep"),
			toDelete:    []string{"a"},
			wantDeleted: 1,
			wantCalls:   []string{"a"},
			wantLeft:    []string{"keep"},
		},
		"nothing to delete": {
			stored:    finishedJobs("keep"),
			wantLeft:  []string{"keep"},
			wantCalls: nil,
		},
		"cancelled context stops before deleting": {
			stored:      finishedJobs("a", "b"),
			toDelete:    []string{"a", "b"},
			cancelled:   true,
			wantErr:     []error{context.Canceled},
			wantErrText: []string{"deleting 2 remaining jobs: " + context.Canceled.Error()},
			wantLeft:    []string{"a", "b"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rec := &deleteRecorder{failDelete: tc.failDelete}
			stored := make([]client.Object, 0, len(tc.stored))
			byName := map[string]batchv1.Job{}
			for _, w := range tc.stored {
				j := w.obj()
				stored = append(stored, &j)
				byName[j.Name] = j
			}
			c := fake.NewClientBuilder().WithObjects(stored...).WithInterceptorFuncs(rec.funcs()).Build()
			var in []batchv1.Job
			for _, n := range tc.toDelete {
				j, ok := byName[n]
				if !ok {
					j = job(n).succeededAt(at(0)).obj()
				}
				in = append(in, j)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tc.cancelled {
				cancel()
			}

			deleted, err := Deleter{Client: c}.Delete(ctx, in)

			if deleted != tc.wantDeleted {
				t.Errorf("Delete() deleted = %d, want %d", deleted, tc.wantDeleted)
			}
			if len(tc.wantErr) == 0 && err != nil {
				t.Errorf("Delete() error = %v, want nil", err)
			}
			for _, want := range tc.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("Delete() error = %v, want it to wrap %v", err, want)
				}
			}
			if len(tc.wantErrText) > 0 {
				var joined interface{ Unwrap() []error }
				if !errors.As(err, &joined) {
					t.Fatalf("Delete() error = %v, want a joined error", err)
				}
				var got []string
				for _, e := range joined.Unwrap() {
					got = append(got, e.Error())
				}
				if diff := cmp.Diff(tc.wantErrText, got); diff != "" {
					t.Errorf("Delete() joined errors mismatch (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(tc.wantCalls, rec.calls, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Delete() calls mismatch (-want +got):\n%s", diff)
			}
			for i, p := range rec.propagations {
				if p != metav1.DeletePropagationBackground {
					t.Errorf("call %d (%s) used propagation %q, want Background", i, rec.calls[i], p)
				}
			}

			var left batchv1.JobList
			if err := c.List(t.Context(), &left); err != nil {
				t.Fatalf("listing jobs: %v", err)
			}
			leftNames := names(left.Items)
			slices.Sort(leftNames)
			if diff := cmp.Diff(tc.wantLeft, leftNames, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Jobs left mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeleterDoesNotMutateInput(t *testing.T) {
	j := job("a").succeededAt(at(1)).obj()
	c := fake.NewClientBuilder().WithObjects(&j).Build()
	in := []batchv1.Job{*j.DeepCopy()}
	before := *in[0].DeepCopy()

	if _, err := (Deleter{Client: c}).Delete(t.Context(), in); err != nil {
		t.Fatalf("Delete() error = %v", err)
	}
	if diff := cmp.Diff(before, in[0]); diff != "" {
		t.Errorf("Delete() mutated its input (-before +after):\n%s", diff)
	}
}
