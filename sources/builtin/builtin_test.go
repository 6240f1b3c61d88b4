package builtin

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Every shipped trigger type declares its endpoint rule (an EndpointsFunc, or sources.NoEndpoints): a type added
// to Registry without one makes Registry fail, and so the dispatcher and the kubectl plugin at start, instead of
// building that type without the endpoint policy.
func TestEveryTypeDeclaresItsEndpointRule(t *testing.T) {
	r, err := Registry()
	if err != nil {
		t.Fatalf("Registry: %v", err)
	}
	if err := r.CheckEndpointRules(); err != nil {
		t.Errorf("CheckEndpointRules: %v", err)
	}
	// The list this test vouches for; a new type is added here once its endpoint rule is reviewed
	// (docs/security.md §1 lists the endpoint keys).
	want := []string{"aws-sqs-queue", "azure-servicebus", "cron", "gcp-pubsub"}
	if diff := cmp.Diff(want, r.Types()); diff != "" {
		t.Errorf("registered types (-want +got):\n%s", diff)
	}
}
