package sqs

import (
	"context"
	"testing"

	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kubedispatch/kubedispatch/sources"
)

// Sources registered together share one HTTP client per region, so a custom CA bundle is parsed once and
// connections are pooled, however many triggers there are (each used to load its own: about 230 KiB each with
// AWS_CA_BUNDLE set, 118 MB at 500 SQS triggers).
func TestRegisteredSourcesShareTheHTTPClient(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "env")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "env")
	r := sources.NewRegistry()
	if err := Register(r); err != nil {
		t.Fatal(err)
	}
	build := func(region, key string) *awssqs.Client {
		t.Helper()
		cfg := sources.Config{Type: Type, Metadata: map[string]string{
			"queueURL": "https://sqs." + region + ".amazonaws.com/123456789012/q", "awsRegion": region}}
		if key != "" {
			cfg.AuthParams = map[string]string{"awsAccessKeyID": key, "awsSecretAccessKey": "secret"}
		}
		src, err := r.New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return src.(*Source).api.(*awssqs.Client)
	}
	a, b, other := build("eu-west-1", ""), build("eu-west-1", "tenant-key"), build("us-east-1", "")
	if a.Options().HTTPClient != b.Options().HTTPClient {
		t.Errorf("two triggers in one region got different HTTP clients")
	}
	if a.Options().Region != "eu-west-1" || other.Options().Region != "us-east-1" {
		t.Errorf("regions %q and %q, want eu-west-1 and us-east-1", a.Options().Region, other.Options().Region)
	}
	ca, err := a.Options().Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cb, err := b.Options().Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ca.AccessKeyID != "env" || cb.AccessKeyID != "tenant-key" {
		t.Errorf("credentials %q and %q, want the environment's and the TriggerAuthentication's", ca.AccessKeyID, cb.AccessKeyID)
	}
}
