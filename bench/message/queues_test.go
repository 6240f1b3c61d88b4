package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseQueues(t *testing.T) {
	for in, want := range map[string][]string{
		"sqs,pubsub,servicebus": {"sqs", "pubsub", "servicebus"},
		"servicebus, pubsub":    {"pubsub", "servicebus"},
		"pubsub,pubsub,":        {"pubsub"},
		"servicebus,sqs":        {"sqs", "servicebus"},
		"sqs":                   {"sqs"},
	} {
		got, err := parseQueues(in)
		if err != nil {
			t.Errorf("parseQueues(%q): %v", in, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("parseQueues(%q) (-want +got):\n%s", in, diff)
		}
	}
	for _, in := range []string{"", ",", "kafka", "sqs,rabbitmq"} {
		if got, err := parseQueues(in); err == nil {
			t.Errorf("parseQueues(%q) = %v, want an error", in, got)
		}
	}
}
