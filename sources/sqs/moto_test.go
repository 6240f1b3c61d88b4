//go:build unix

package sqs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kubedispatch/kubedispatch/internal/sourcetest"
	"github.com/kubedispatch/kubedispatch/sources"
)

// TestBacklogOnMoto reads a real SQS API (moto_server) through the factory: 7 messages sent, 2 of them received and
// still in flight.
func TestBacklogOnMoto(t *testing.T) {
	hermeticAWSEnv(t)
	endpoint := startMoto(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	queueURL := seedQueue(ctx, t, endpoint, "jobs", 7, 2)
	closedEndpoint := "http://" + sourcetest.FreeAddr(t)

	staticAuth := func(c *sources.Config) {
		sourcetest.WithAuth("awsAccessKeyID", "test")(c)
		sourcetest.WithAuth("awsSecretAccessKey", "test")(c)
	}
	cases := map[string]struct {
		cfg          sources.Config
		env          map[string]string
		want         sources.Backlog
		wantNotFound bool
		wantErr      bool
	}{
		"in flight counted": {
			cfg: trigger(sourcetest.WithMetadata("queueURL", queueURL),
				sourcetest.WithMetadata("awsRegion", "us-east-1"),
				sourcetest.WithMetadata("awsEndpoint", endpoint), staticAuth),
			want: sources.Backlog{Value: 7, Target: 5, Active: true, SampledAt: fixedNow()},
		},
		"in flight not counted": {
			cfg: trigger(sourcetest.WithMetadata("queueURL", queueURL),
				sourcetest.WithMetadata("awsRegion", "us-east-1"),
				sourcetest.WithMetadata("awsEndpoint", endpoint), sourcetest.WithMetadata("scaleOnInFlight", "false"),
				sourcetest.WithMetadata("queueLength", "1"), sourcetest.WithMetadata("activationQueueLength", "5"),
				staticAuth),
			want: sources.Backlog{Value: 5, Target: 1, Active: false, SampledAt: fixedNow()},
		},
		"queue name and the default chain from the environment": {
			cfg: trigger(sourcetest.WithMetadata("queueURL", "jobs"), sourcetest.WithMetadata("awsRegion", "us-east-1"),
				sourcetest.WithPodIdentity("aws")),
			env: map[string]string{
				"AWS_ACCESS_KEY_ID":     "test",
				"AWS_SECRET_ACCESS_KEY": "test",
				"AWS_ENDPOINT_URL_SQS":  endpoint,
			},
			want: sources.Backlog{Value: 7, Target: 5, Active: true, SampledAt: fixedNow()},
		},
		"missing queue": {
			cfg: trigger(sourcetest.WithMetadata("queueURL", endpoint+"/123456789012/nope"),
				sourcetest.WithMetadata("awsRegion", "us-east-1"),
				sourcetest.WithMetadata("awsEndpoint", endpoint), staticAuth),
			wantNotFound: true,
			wantErr:      true,
		},
		"closed endpoint is transient": {
			cfg: trigger(sourcetest.WithMetadata("queueURL", queueURL),
				sourcetest.WithMetadata("awsRegion", "us-east-1"),
				sourcetest.WithMetadata("awsEndpoint", closedEndpoint), staticAuth),
			wantErr: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			src, err := New(ctx, tc.cfg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			t.Cleanup(func() { _ = src.Close() })
			got, err := src.Backlog(ctx, fixedNow())
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Backlog = %+v, want an error", got)
				}
				t.Logf("Backlog error: %v", err)
				sourcetest.AssertBacklogError(t, err, tc.wantNotFound)
				return
			}
			if err != nil {
				t.Fatalf("Backlog: %v", err)
			}
			if got != tc.want {
				t.Errorf("Backlog = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// hermeticAWSEnv keeps the host's AWS configuration out of the test: every AWS_ variable is unset (and restored at
// the end), the shared files point at nothing and instance metadata is off.
func hermeticAWSEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "") // registers the restore
			if err := os.Unsetenv(k); err != nil {
				t.Fatalf("unsetting %s: %v", k, err)
			}
		}
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// seedQueue creates a queue, sends it `send` messages and receives `receive` of them (left in flight), and returns
// its URL.
func seedQueue(ctx context.Context, t *testing.T, endpoint, name string, send, receive int) string {
	t.Helper()
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion("us-east-1"),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	if err != nil {
		t.Fatalf("loading AWS config: %v", err)
	}
	c := awssqs.NewFromConfig(cfg, func(o *awssqs.Options) { o.BaseEndpoint = aws.String(endpoint) })
	created, err := c.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatalf("creating queue %s: %v", name, err)
	}
	q := aws.ToString(created.QueueUrl)
	for i := range send {
		if _, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: created.QueueUrl, MessageBody: aws.String(strconv.Itoa(i))}); err != nil {
			t.Fatalf("sending message %d: %v", i, err)
		}
	}
	for got := 0; got < receive; {
		out, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: created.QueueUrl,
			MaxNumberOfMessages: int32(receive - got), VisibilityTimeout: 600, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatalf("receiving messages: %v", err)
		}
		got += len(out.Messages)
	}
	return q
}

// startMoto starts moto_server on a free loopback port, waits until it answers and returns its endpoint. The server
// is killed, and waited for, when the test ends.
func startMoto(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("moto_server")
	if err != nil {
		t.Fatalf("moto_server not found on PATH (%v); install it with: pip install 'moto[server]==5.2.1'", err)
	}
	// moto (boto) chokes on some empty AWS_ variables; give it none of ours.
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return "http://" + sourcetest.StartProcess(t, sourcetest.Process{
		Name:      "moto_server",
		Path:      path,
		Args:      func(host, port string) []string { return []string{"-H", host, "-p", port} },
		Env:       env,
		ReadyPath: "/moto-api/",
	})
}
