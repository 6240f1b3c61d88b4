package sqs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/kubedispatch/kubedispatch/internal/sourcetest"
	"github.com/kubedispatch/kubedispatch/sources"
)

const testQueueURL = "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs"

// fixedNow is the instant every test reads at.
func fixedNow() time.Time { return time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC) }

// fakeAPI is a hand-written API that returns canned attributes or an error and records its inputs.
type fakeAPI struct {
	attrs map[string]string
	err   error

	mu    sync.Mutex
	calls []*awssqs.GetQueueAttributesInput
}

func (f *fakeAPI) GetQueueAttributes(_ context.Context, in *awssqs.GetQueueAttributesInput, _ ...func(*awssqs.Options)) (*awssqs.GetQueueAttributesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, in)
	if f.err != nil {
		return nil, f.err
	}
	// Like SQS, answer only the attributes asked for.
	out := map[string]string{}
	for _, name := range in.AttributeNames {
		if v, ok := f.attrs[string(name)]; ok {
			out[string(name)] = v
		}
	}
	return &awssqs.GetQueueAttributesOutput{Attributes: out}, nil
}

// counts returns SQS attributes for the given visible, in-flight and delayed counts.
func counts(visible, notVisible, delayed string) map[string]string {
	return map[string]string{
		"ApproximateNumberOfMessages":           visible,
		"ApproximateNumberOfMessagesNotVisible": notVisible,
		"ApproximateNumberOfMessagesDelayed":    delayed,
	}
}

// trigger builds an aws-sqs-queue trigger config with a valid queue URL and region, changed by the options.
func trigger(opts ...sourcetest.Option) sources.Config {
	defaults := []sourcetest.Option{
		sourcetest.WithMetadata("queueURL", testQueueURL),
		sourcetest.WithMetadata("awsRegion", "eu-west-1"),
	}
	return sourcetest.Config(Type, append(defaults, opts...)...)
}

func TestBacklog(t *testing.T) {
	cases := map[string]struct {
		cfg       sources.Config
		attrs     map[string]string
		want      sources.Backlog
		wantAttrs []types.QueueAttributeName
	}{
		"defaults count visible and in flight": {
			cfg:   trigger(),
			attrs: counts("200", "100", "50"),
			want:  sources.Backlog{Value: 300, Target: 5, Active: true, SampledAt: fixedNow()},
			wantAttrs: []types.QueueAttributeName{
				types.QueueAttributeNameApproximateNumberOfMessages,
				types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			},
		},
		"scaleOnInFlight false": {
			cfg:       trigger(sourcetest.WithMetadata("scaleOnInFlight", "false")),
			attrs:     counts("200", "100", "50"),
			want:      sources.Backlog{Value: 200, Target: 5, Active: true, SampledAt: fixedNow()},
			wantAttrs: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages},
		},
		"scaleOnDelayed true": {
			cfg:   trigger(sourcetest.WithMetadata("scaleOnDelayed", "true")),
			attrs: counts("200", "100", "50"),
			want:  sources.Backlog{Value: 350, Target: 5, Active: true, SampledAt: fixedNow()},
			wantAttrs: []types.QueueAttributeName{
				types.QueueAttributeNameApproximateNumberOfMessages,
				types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
				types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
			},
		},
		"scaleOnInFlight false and scaleOnDelayed true": {
			cfg: trigger(sourcetest.WithMetadata("scaleOnInFlight", "false"),
				sourcetest.WithMetadata("scaleOnDelayed", "true")),
			attrs: counts("200", "100", "50"),
			want:  sources.Backlog{Value: 250, Target: 5, Active: true, SampledAt: fixedNow()},
			wantAttrs: []types.QueueAttributeName{
				types.QueueAttributeNameApproximateNumberOfMessages,
				types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
			},
		},
		"raw attributes 1 0 0": {
			cfg:   trigger(sourcetest.WithMetadata("scaleOnDelayed", "true")),
			attrs: counts("1", "0", "0"),
			want:  sources.Backlog{Value: 1, Target: 5, Active: true, SampledAt: fixedNow()},
			wantAttrs: []types.QueueAttributeName{
				types.QueueAttributeNameApproximateNumberOfMessages,
				types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
				types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
			},
		},
		"int64 count above int32": {
			cfg:   trigger(sourcetest.WithMetadata("scaleOnInFlight", "false")),
			attrs: counts("2147483648", "0", "0"),
			want:  sources.Backlog{Value: 2147483648, Target: 5, Active: true, SampledAt: fixedNow()},
			wantAttrs: []types.QueueAttributeName{
				types.QueueAttributeNameApproximateNumberOfMessages,
			},
		},
		"empty queue is inactive": {
			cfg:   trigger(),
			attrs: counts("0", "0", "0"),
			want:  sources.Backlog{Value: 0, Target: 5, Active: false, SampledAt: fixedNow()},
			wantAttrs: []types.QueueAttributeName{
				types.QueueAttributeNameApproximateNumberOfMessages,
				types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			},
		},
		"at the activation threshold is inactive": {
			cfg: trigger(sourcetest.WithMetadata("activationQueueLength", "10"),
				sourcetest.WithMetadata("queueLength", "1")),
			attrs: counts("6", "4", "0"),
			want:  sources.Backlog{Value: 10, Target: 1, Active: false, SampledAt: fixedNow()},
			wantAttrs: []types.QueueAttributeName{
				types.QueueAttributeNameApproximateNumberOfMessages,
				types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			},
		},
		"above the activation threshold is active": {
			cfg: trigger(sourcetest.WithMetadata("activationQueueLength", "10"),
				sourcetest.WithMetadata("queueLength", "1")),
			attrs: counts("7", "4", "0"),
			want:  sources.Backlog{Value: 11, Target: 1, Active: true, SampledAt: fixedNow()},
			wantAttrs: []types.QueueAttributeName{
				types.QueueAttributeNameApproximateNumberOfMessages,
				types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			},
		},
		"queue name and queueLength from env": {
			cfg: trigger(sourcetest.WithoutMetadata("queueURL"), sourcetest.WithMetadata("queueURLFromEnv", "QUEUE"),
				sourcetest.WithEnv("QUEUE", "jobs"),
				sourcetest.WithMetadata("queueLengthFromEnv", "PER_JOB"), sourcetest.WithEnv("PER_JOB", "2")),
			attrs: counts("3", "0", "0"),
			want:  sources.Backlog{Value: 3, Target: 2, Active: true, SampledAt: fixedNow()},
			wantAttrs: []types.QueueAttributeName{
				types.QueueAttributeNameApproximateNumberOfMessages,
				types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			api := &fakeAPI{attrs: tc.attrs}
			src, err := NewWithAPI(tc.cfg, api)
			if err != nil {
				t.Fatalf("NewWithAPI: %v", err)
			}
			got, err := src.Backlog(context.Background(), fixedNow())
			if err != nil {
				t.Fatalf("Backlog: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Backlog mismatch (-want +got):\n%s", diff)
			}
			if len(api.calls) != 1 {
				t.Fatalf("GetQueueAttributes called %d times, want 1", len(api.calls))
			}
			if diff := cmp.Diff(tc.wantAttrs, api.calls[0].AttributeNames); diff != "" {
				t.Errorf("requested attributes mismatch (-want +got):\n%s", diff)
			}
			if got, want := aws.ToString(api.calls[0].QueueUrl), src.Metadata().QueueURL; got != want {
				t.Errorf("QueueUrl = %q, want %q", got, want)
			}
		})
	}
}

func TestBacklogErrors(t *testing.T) {
	sdkNotFound := &smithy.OperationError{ServiceID: "SQS", OperationName: "GetQueueAttributes",
		Err: &types.QueueDoesNotExist{Message: aws.String("The specified queue does not exist.")}}
	codeNotFound := &smithy.GenericAPIError{Code: "AWS.SimpleQueueService.NonExistentQueue", Message: "gone"}
	throttled := &smithy.GenericAPIError{Code: "RequestThrottled", Message: "slow down"}
	cases := map[string]struct {
		cfg          sources.Config
		attrs        map[string]string
		err          error
		wantNotFound bool
		wantMsg      string
	}{
		"missing attributes": {
			cfg:     trigger(),
			attrs:   map[string]string{},
			wantMsg: "reading attributes of SQS queue " + testQueueURL + ": response has no ApproximateNumberOfMessages",
		},
		"missing in-flight attribute": {
			cfg:     trigger(),
			attrs:   map[string]string{"ApproximateNumberOfMessages": "1"},
			wantMsg: "reading attributes of SQS queue " + testQueueURL + ": response has no ApproximateNumberOfMessagesNotVisible",
		},
		"non-integer attribute": {
			cfg:     trigger(),
			attrs:   counts("NotInt", "0", "0"),
			wantMsg: "reading attributes of SQS queue " + testQueueURL + `: ApproximateNumberOfMessages is "NotInt", not an integer`,
		},
		"typed queue does not exist": {
			cfg:          trigger(),
			err:          sdkNotFound,
			wantNotFound: true,
			wantMsg:      fmt.Sprintf("reading attributes of SQS queue %s: queue not found: %v", testQueueURL, sdkNotFound),
		},
		"queue does not exist by error code": {
			cfg:          trigger(sourcetest.WithMetadata("queueURL", "jobs")),
			err:          codeNotFound,
			wantNotFound: true,
			wantMsg:      fmt.Sprintf("reading attributes of SQS queue jobs: queue not found: %v", codeNotFound),
		},
		"other API error is transient": {
			cfg:     trigger(),
			err:     throttled,
			wantMsg: fmt.Sprintf("reading attributes of SQS queue %s: %v", testQueueURL, throttled),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			src, err := NewWithAPI(tc.cfg, &fakeAPI{attrs: tc.attrs, err: tc.err})
			if err != nil {
				t.Fatalf("NewWithAPI: %v", err)
			}
			got, err := src.Backlog(context.Background(), fixedNow())
			if err == nil {
				t.Fatalf("Backlog = %+v, want an error", got)
			}
			if diff := cmp.Diff(tc.wantMsg, err.Error()); diff != "" {
				t.Errorf("error message mismatch (-want +got):\n%s", diff)
			}
			sourcetest.AssertBacklogError(t, err, tc.wantNotFound)
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Errorf("error %v does not wrap the SDK error", err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	cases := map[string]struct {
		cfg     sources.Config
		want    Metadata
		wantErr *sources.ConfigError
	}{
		"defaults": {
			cfg: trigger(),
			want: Metadata{QueueURL: testQueueURL, QueueName: "jobs", QueueLength: 5, Region: "eu-west-1",
				ScaleOnInFlight: true},
		},
		"everything set": {
			cfg: trigger(sourcetest.WithMetadata("queueLength", "2"),
				sourcetest.WithMetadata("activationQueueLength", "3"),
				sourcetest.WithMetadata("awsEndpoint", "http://127.0.0.1:4566"),
				sourcetest.WithMetadata("scaleOnInFlight", "false"),
				sourcetest.WithMetadata("scaleOnDelayed", "true")),
			want: Metadata{QueueURL: testQueueURL, QueueName: "jobs", QueueLength: 2, ActivationQueueLength: 3,
				Region: "eu-west-1", Endpoint: "http://127.0.0.1:4566", ScaleOnDelayed: true},
		},
		"queue name only": {
			cfg:  trigger(sourcetest.WithMetadata("queueURL", "jobs.fifo")),
			want: Metadata{QueueURL: "jobs.fifo", QueueName: "jobs.fifo", QueueLength: 5, Region: "eu-west-1", ScaleOnInFlight: true},
		},
		"queue URL from env": {
			cfg: trigger(sourcetest.WithoutMetadata("queueURL"),
				sourcetest.WithMetadata("queueURLFromEnv", "QUEUE_URL"),
				sourcetest.WithEnv("QUEUE_URL", "http://localhost:4566/000000000000/work")),
			want: Metadata{QueueURL: "http://localhost:4566/000000000000/work", QueueName: "work", QueueLength: 5,
				Region: "eu-west-1", ScaleOnInFlight: true},
		},
		"region from auth params": {
			cfg:  trigger(sourcetest.WithoutMetadata("awsRegion"), sourcetest.WithAuth("awsRegion", "us-east-2")),
			want: Metadata{QueueURL: testQueueURL, QueueName: "jobs", QueueLength: 5, Region: "us-east-2", ScaleOnInFlight: true},
		},
		"missing queueURL": {
			cfg: trigger(sourcetest.WithoutMetadata("queueURL")),
			wantErr: &sources.ConfigError{Field: "metadata.queueURL",
				Detail: "is required (set queueURL, queueURLFromEnv or the authenticationRef parameter queueURL)"},
		},
		"queueURLFromEnv names a missing variable": {
			cfg: trigger(sourcetest.WithoutMetadata("queueURL"),
				sourcetest.WithMetadata("queueURLFromEnv", "QUEUE_URL")),
			wantErr: &sources.ConfigError{Field: "metadata.queueURLFromEnv",
				Detail: `environment variable "QUEUE_URL" is not set in the envSourceContainerName container`},
		},
		"URL without queue segment": {
			cfg: trigger(sourcetest.WithMetadata("queueURL", "https://sqs.eu-west-1.amazonaws.com/123456789012")),
			wantErr: &sources.ConfigError{Field: "metadata.queueURL",
				Detail: `"https://sqs.eu-west-1.amazonaws.com/123456789012" has no queue in its path (want https://<host>/<account>/<queue>)`},
		},
		"URL with empty queue segment": {
			cfg: trigger(sourcetest.WithMetadata("queueURL", "https://sqs.eu-west-1.amazonaws.com/123456789012/")),
			wantErr: &sources.ConfigError{Field: "metadata.queueURL",
				Detail: `"https://sqs.eu-west-1.amazonaws.com/123456789012/" has no queue in its path (want https://<host>/<account>/<queue>)`},
		},
		"URL without path": {
			cfg: trigger(sourcetest.WithMetadata("queueURL", "https://sqs.eu-west-1.amazonaws.com")),
			wantErr: &sources.ConfigError{Field: "metadata.queueURL",
				Detail: `"https://sqs.eu-west-1.amazonaws.com" has no queue in its path (want https://<host>/<account>/<queue>)`},
		},
		"URL with extra segment": {
			cfg: trigger(sourcetest.WithMetadata("queueURL", "https://sqs.eu-west-1.amazonaws.com/1/jobs/x")),
			wantErr: &sources.ConfigError{Field: "metadata.queueURL",
				Detail: `"https://sqs.eu-west-1.amazonaws.com/1/jobs/x" has no queue in its path (want https://<host>/<account>/<queue>)`},
		},
		"empty region": {
			cfg: trigger(sourcetest.WithMetadata("awsRegion", "")),
			wantErr: &sources.ConfigError{Field: "metadata.awsRegion",
				Detail: "is required (set awsRegion, awsRegionFromEnv or the authenticationRef parameter awsRegion)"},
		},
		"non-integer queueLength": {
			cfg:     trigger(sourcetest.WithMetadata("queueLength", "a")),
			wantErr: &sources.ConfigError{Field: "metadata.queueLength", Detail: `"a" is not an integer`},
		},
		"zero queueLength": {
			cfg:     trigger(sourcetest.WithMetadata("queueLength", "0")),
			wantErr: &sources.ConfigError{Field: "metadata.queueLength", Detail: "must be at least 1, got 0"},
		},
		"non-integer activationQueueLength": {
			cfg:     trigger(sourcetest.WithMetadata("activationQueueLength", "a")),
			wantErr: &sources.ConfigError{Field: "metadata.activationQueueLength", Detail: `"a" is not an integer`},
		},
		"non-boolean scaleOnInFlight": {
			cfg:     trigger(sourcetest.WithMetadata("scaleOnInFlight", "sometimes")),
			wantErr: &sources.ConfigError{Field: "metadata.scaleOnInFlight", Detail: `"sometimes" is not a boolean (use true or false)`},
		},
		"endpoint without scheme": {
			cfg:     trigger(sourcetest.WithMetadata("awsEndpoint", "localhost:4566")),
			wantErr: &sources.ConfigError{Field: "metadata.awsEndpoint", Detail: `"localhost:4566" is not an http(s) URL with a host`},
		},
		"identityOwner is not supported": {
			cfg: trigger(sourcetest.WithMetadata("identityOwner", "operator")),
			wantErr: &sources.ConfigError{Field: "metadata.identityOwner",
				Detail: "is deprecated and not supported; use a TriggerAuthentication with podIdentity provider aws, or access keys"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Parse(tc.cfg)
			sourcetest.AssertConfigError(t, err, tc.wantErr)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Parse mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCredentials(t *testing.T) {
	type creds struct {
		Static                         bool
		KeyID, SecretKey, SessionToken string
	}
	cases := map[string]struct {
		cfg     sources.Config
		want    creds
		wantErr *sources.ConfigError
	}{
		"no authentication uses the default chain": {
			cfg: trigger(),
		},
		"pod identity aws uses the default chain": {
			cfg: trigger(sourcetest.WithPodIdentity("aws")),
		},
		"access keys": {
			cfg: trigger(sourcetest.WithAuth("awsAccessKeyID", "AKID"),
				sourcetest.WithAuth("awsSecretAccessKey", "SECRET")),
			want: creds{Static: true, KeyID: "AKID", SecretKey: "SECRET"},
		},
		"access keys with session token": {
			cfg: trigger(sourcetest.WithAuth("awsAccessKeyID", "AKID"),
				sourcetest.WithAuth("awsSecretAccessKey", "SECRET"),
				sourcetest.WithAuth("awsSessionToken", "TOKEN")),
			want: creds{Static: true, KeyID: "AKID", SecretKey: "SECRET", SessionToken: "TOKEN"},
		},
		"access keys win over pod identity": {
			cfg: trigger(sourcetest.WithPodIdentity("aws"), sourcetest.WithAuth("awsAccessKeyID", "AKID"),
				sourcetest.WithAuth("awsSecretAccessKey", "SECRET")),
			want: creds{Static: true, KeyID: "AKID", SecretKey: "SECRET"},
		},
		"access keys in metadata are ignored": {
			cfg: trigger(sourcetest.WithMetadata("awsAccessKeyID", "AKID"),
				sourcetest.WithMetadata("awsSecretAccessKey", "SECRET")),
		},
		"key id without secret": {
			cfg: trigger(sourcetest.WithAuth("awsAccessKeyID", "AKID")),
			wantErr: &sources.ConfigError{Field: "authenticationRef",
				Detail: "parameter awsSecretAccessKey is missing (awsAccessKeyID is set)"},
		},
		"secret without key id": {
			cfg: trigger(sourcetest.WithAuth("awsSecretAccessKey", "SECRET")),
			wantErr: &sources.ConfigError{Field: "authenticationRef",
				Detail: "parameter awsAccessKeyID is missing (awsSecretAccessKey is set)"},
		},
		"session token alone": {
			cfg: trigger(sourcetest.WithAuth("awsSessionToken", "TOKEN")),
			wantErr: &sources.ConfigError{Field: "authenticationRef",
				Detail: "parameter awsSessionToken needs awsAccessKeyID and awsSecretAccessKey"},
		},
		"role ARN with access keys": {
			cfg: trigger(sourcetest.WithAuth("awsRoleArn", "arn:aws:iam::123456789012:role/jobs"),
				sourcetest.WithAuth("awsAccessKeyID", "ID"), sourcetest.WithAuth("awsSecretAccessKey", "SECRET")),
			wantErr: &sources.ConfigError{Field: "authenticationRef",
				Detail: "parameter awsRoleArn and access keys are both set: use one (the role is assumed with the dispatcher's own identity)"},
		},
		"foreign pod identity": {
			cfg: trigger(sourcetest.WithPodIdentity("gcp")),
			wantErr: &sources.ConfigError{Field: "authenticationRef",
				Detail: `podIdentity provider "gcp" cannot authenticate to SQS (use aws, or access keys)`},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			provider, err := credentialsFor(tc.cfg)
			sourcetest.AssertConfigError(t, err, tc.wantErr)
			if err != nil {
				if _, nerr := New(context.Background(), tc.cfg); !sources.IsConfigError(nerr) {
					t.Errorf("New() error = %v, want the same ConfigError", nerr)
				}
				return
			}
			var got creds
			if provider != nil {
				v, rerr := provider.Retrieve(context.Background())
				if rerr != nil {
					t.Fatalf("Retrieve: %v", rerr)
				}
				got = creds{Static: true, KeyID: v.AccessKeyID, SecretKey: v.SecretAccessKey, SessionToken: v.SessionToken}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("credentials mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewBuildsAClientWithoutNetwork(t *testing.T) {
	// Keep the default configuration hermetic: no shared files, no instance metadata.
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	src, err := New(context.Background(), trigger(sourcetest.WithAuth("awsAccessKeyID", "AKID"),
		sourcetest.WithAuth("awsSecretAccessKey", "SECRET")))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s, ok := src.(*Source)
	if !ok {
		t.Fatalf("New() = %T, want *Source", src)
	}
	client, ok := s.api.(*awssqs.Client)
	if !ok {
		t.Fatalf("API = %T, want *sqs.Client", s.api)
	}
	if got := client.Options().Region; got != "eu-west-1" {
		t.Errorf("client region = %q, want eu-west-1", got)
	}
	for range 2 {
		if err := src.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
}

func TestRegister(t *testing.T) {
	sourcetest.AssertRegister(t, Register, trigger(sourcetest.WithoutMetadata("queueURL")))
}
