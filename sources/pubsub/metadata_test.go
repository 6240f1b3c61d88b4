package pubsub

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubedispatch/kubedispatch/internal/sourcetest"
	"github.com/kubedispatch/kubedispatch/sources"
)

// secretKeyMaterial is the private key inside every test service account key; no error may quote it.
const secretKeyMaterial = "MIIEvTOPSECRETKEYMATERIAL"

// saKey returns a service account key (JSON) for project.
func saKey(project string) string {
	return `{"type":"service_account","project_id":"` + project + `","private_key_id":"abc",` +
		`"private_key":"-----BEGIN PRIVATE KEY-----\n` + secretKeyMaterial + `\n-----END PRIVATE KEY-----\n",` +
		`"client_email":"scaler@` + project + `.iam.gserviceaccount.com","client_id":"1",` +
		`"token_uri":"https://oauth2.googleapis.com/token"}`
}

// trigger builds a gcp-pubsub config reading subscription jobs-sub with a service account key of project
// key-project from the env var GCP_CREDS, changed by the options.
func trigger(opts ...sourcetest.Option) sources.Config {
	defaults := []sourcetest.Option{
		sourcetest.WithMetadata("subscriptionName", "jobs-sub"),
		sourcetest.WithMetadata("credentialsFromEnv", "GCP_CREDS"),
		sourcetest.WithEnv("GCP_CREDS", saKey("key-project")),
	}
	return sourcetest.Config(Type, append(defaults, opts...)...)
}

// noCredentials removes the default credentials.
func noCredentials(c *sources.Config) {
	delete(c.Metadata, "credentialsFromEnv")
	c.Env = map[string]string{}
}

// meta builds the Metadata of the default trigger, changed by the options.
func meta(opts ...func(*Metadata)) Metadata {
	m := Metadata{
		Resource:    ResourceSubscription,
		ResourceID:  "jobs-sub",
		Project:     "key-project",
		Mode:        "NumUndeliveredMessages",
		MetricType:  "pubsub.googleapis.com/subscription/num_undelivered_messages",
		Value:       10,
		TimeHorizon: 2 * time.Minute,
		Auth:        AuthServiceAccountKey,
	}
	for _, o := range opts {
		o(&m)
	}
	return m
}

func ptr[T any](v T) *T { return &v }

// withEnvFile sets the content the controller resolved for the file that env variable name points at.
func withEnvFile(name, content string) sourcetest.Option {
	return func(c *sources.Config) {
		if c.EnvFiles == nil {
			c.EnvFiles = map[string]string{}
		}
		c.EnvFiles[name] = content
	}
}

func TestParse(t *testing.T) {
	const credsFile = "/var/secrets/google/key.json"
	cases := map[string]struct {
		cfg        sources.Config
		envProject string
		want       Metadata
	}{
		"defaults": {
			cfg:  trigger(),
			want: meta(),
		},
		"SubscriptionSize is an alias": {
			cfg:  trigger(sourcetest.WithMetadata("mode", "SubscriptionSize")),
			want: meta(),
		},
		"full subscription name overrides the key's project": {
			cfg:  trigger(sourcetest.WithMetadata("subscriptionName", "projects/other-project/subscriptions/jobs-sub")),
			want: meta(func(m *Metadata) { m.Project = "other-project" }),
		},
		"subscription from env": {
			cfg: trigger(sourcetest.WithoutMetadata("subscriptionName"),
				sourcetest.WithMetadata("subscriptionNameFromEnv", "SUB"),
				sourcetest.WithEnv("SUB", "projects/env-project/subscriptions/env-sub")),
			want: meta(func(m *Metadata) { m.Project, m.ResourceID = "env-project", "env-sub" }),
		},
		"other subscription metric": {
			cfg: trigger(sourcetest.WithMetadata("mode", "OldestUnackedMessageAge"),
				sourcetest.WithMetadata("value", "5.5"),
				sourcetest.WithMetadata("activationValue", "1.5")),
			want: meta(func(m *Metadata) {
				m.Mode = "OldestUnackedMessageAge"
				m.MetricType = "pubsub.googleapis.com/subscription/oldest_unacked_message_age"
				m.Value, m.ActivationValue = 5.5, 1.5
			}),
		},
		"topic metric": {
			cfg: trigger(sourcetest.WithoutMetadata("subscriptionName"),
				sourcetest.WithMetadata("topicName", "projects/topic-project/topics/jobs"),
				sourcetest.WithMetadata("mode", "SendMessageOperationCount")),
			want: meta(func(m *Metadata) {
				m.Resource, m.ResourceID, m.Project = ResourceTopic, "jobs", "topic-project"
				m.Mode = "SendMessageOperationCount"
				m.MetricType = "pubsub.googleapis.com/topic/send_message_operation_count"
			}),
		},
		"aggregation lengthens the default horizon": {
			cfg: trigger(sourcetest.WithMetadata("mode", "AckLatencies"),
				sourcetest.WithMetadata("aggregation", "percentile99")),
			want: meta(func(m *Metadata) {
				m.Mode, m.MetricType = "AckLatencies", "pubsub.googleapis.com/subscription/ack_latencies"
				m.Aggregation, m.TimeHorizon = "percentile99", 5*time.Minute
			}),
		},
		"explicit horizon and valueIfNull": {
			cfg:  trigger(sourcetest.WithMetadata("timeHorizon", "90s"), sourcetest.WithMetadata("valueIfNull", "0")),
			want: meta(func(m *Metadata) { m.TimeHorizon, m.ValueIfNull = 90*time.Second, ptr(0.0) }),
		},
		"projectID wins over the key's project": {
			cfg:  trigger(sourcetest.WithMetadata("projectID", "meta-project")),
			want: meta(func(m *Metadata) { m.Project = "meta-project" }),
		},
		"key from the TriggerAuthentication wins over credentialsFromEnv": {
			cfg:  trigger(sourcetest.WithAuth("GoogleApplicationCredentials", saKey("auth-project"))),
			want: meta(func(m *Metadata) { m.Project = "auth-project" }),
		},
		"key file": {
			cfg: trigger(noCredentials, sourcetest.WithMetadata("credentialsFromEnvFile", "CREDS_FILE"),
				sourcetest.WithEnv("CREDS_FILE", credsFile), withEnvFile("CREDS_FILE", saKey("file-project"))),
			want: meta(func(m *Metadata) { m.Project = "file-project" }),
		},
		"pod identity with projectID": {
			cfg: trigger(noCredentials, sourcetest.WithPodIdentity("gcp"),
				sourcetest.WithMetadata("projectID", "meta-project")),
			want: meta(func(m *Metadata) { m.Project, m.Auth = "meta-project", AuthPodIdentity }),
		},
		"pod identity wins over a key": {
			cfg: trigger(sourcetest.WithPodIdentity("gcp"),
				sourcetest.WithMetadata("subscriptionName", "projects/p-project/subscriptions/s-1")),
			want: meta(func(m *Metadata) { m.Project, m.ResourceID, m.Auth = "p-project", "s-1", AuthPodIdentity }),
		},
		"pod identity with the controller's GOOGLE_CLOUD_PROJECT": {
			cfg:        trigger(noCredentials, sourcetest.WithPodIdentity("gcp")),
			envProject: "ctrl-project",
			want:       meta(func(m *Metadata) { m.Project, m.Auth = "ctrl-project", AuthPodIdentity }),
		},
		"insecure endpoint needs no credentials": {
			cfg: trigger(noCredentials, sourcetest.WithMetadata("monitoringEndpoint", "127.0.0.1:9999"),
				sourcetest.WithMetadata("monitoringInsecure", "true"),
				sourcetest.WithMetadata("projectID", "test-project")),
			want: meta(func(m *Metadata) {
				m.Project, m.Auth = "test-project", AuthNone
				m.MonitoringEndpoint, m.MonitoringInsecure = "127.0.0.1:9999", true
			}),
		},
		"endpoint with credentials": {
			cfg: trigger(sourcetest.WithMetadata("monitoringEndpoint", "monitoring.example.com:443")),
			want: meta(func(m *Metadata) {
				m.MonitoringEndpoint = "monitoring.example.com:443"
			}),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, _, err := parse(tc.cfg, tc.envProject)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parse mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Setenv("GOOGLE_CLOUD_PROJECT", "")
	const missingFile = "/var/secrets/google/missing.json"
	cases := map[string]struct {
		cfg     sources.Config
		wantErr *sources.ConfigError
	}{
		"neither subscription nor topic": {
			cfg: trigger(sourcetest.WithoutMetadata("subscriptionName")),
			wantErr: &sources.ConfigError{Field: "metadata.subscriptionName",
				Detail: "or topicName is required (set exactly one, or its FromEnv variant)"},
		},
		"both subscription and topic": {
			cfg: trigger(sourcetest.WithMetadata("topicName", "jobs")),
			wantErr: &sources.ConfigError{Field: "metadata.subscriptionName",
				Detail: "and topicName are both set; set exactly one"},
		},
		"subscription from a missing env var": {
			cfg: trigger(sourcetest.WithoutMetadata("subscriptionName"),
				sourcetest.WithMetadata("subscriptionNameFromEnv", "SUB")),
			wantErr: &sources.ConfigError{Field: "metadata.subscriptionNameFromEnv",
				Detail: `environment variable "SUB" is not set in the envSourceContainerName container`},
		},
		"topic path in subscriptionName": {
			cfg: trigger(sourcetest.WithMetadata("subscriptionName", "projects/p-project/topics/jobs")),
			wantErr: &sources.ConfigError{Field: "metadata.subscriptionName",
				Detail: `"projects/p-project/topics/jobs" is not a subscription ID nor projects/<project>/subscriptions/<id>`},
		},
		"path with extra segments": {
			cfg: trigger(sourcetest.WithMetadata("subscriptionName", "projects/p-project/subscriptions/jobs/x")),
			wantErr: &sources.ConfigError{Field: "metadata.subscriptionName",
				Detail: `"projects/p-project/subscriptions/jobs/x" is not a subscription ID nor projects/<project>/subscriptions/<id>`},
		},
		"invalid project in path": {
			cfg: trigger(sourcetest.WithMetadata("subscriptionName", "projects/P/subscriptions/jobs")),
			wantErr: &sources.ConfigError{Field: "metadata.subscriptionName",
				Detail: `"projects/P/subscriptions/jobs" has an invalid project ID "P"`},
		},
		"invalid subscription ID": {
			cfg: trigger(sourcetest.WithMetadata("subscriptionName", `jobs" OR metric.type = "x`)),
			wantErr: &sources.ConfigError{Field: "metadata.subscriptionName",
				Detail: `"jobs\" OR metric.type = \"x" is not a valid subscription ID (3-255 letters, digits or -_.~+%, starting with a letter)`},
		},
		"mode in snake case": {
			cfg: trigger(sourcetest.WithMetadata("mode", "num_undelivered_messages")),
			wantErr: &sources.ConfigError{Field: "metadata.mode",
				Detail: `"num_undelivered_messages" is not a PascalCase Pub/Sub metric name (e.g. SubscriptionSize, NumUndeliveredMessages, OldestUnackedMessageAge)`},
		},
		"mode with a space": {
			cfg: trigger(sourcetest.WithMetadata("mode", "Subscription Size")),
			wantErr: &sources.ConfigError{Field: "metadata.mode",
				Detail: `"Subscription Size" is not a PascalCase Pub/Sub metric name (e.g. SubscriptionSize, NumUndeliveredMessages, OldestUnackedMessageAge)`},
		},
		"topic with the default mode": {
			cfg: trigger(sourcetest.WithoutMetadata("subscriptionName"), sourcetest.WithMetadata("topicName", "jobs")),
			wantErr: &sources.ConfigError{Field: "metadata.mode",
				Detail: "must name a topic metric with topicName (there is no topic/num_undelivered_messages), e.g. SendMessageOperationCount"},
		},
		"non-numeric value": {
			cfg:     trigger(sourcetest.WithMetadata("value", "ten")),
			wantErr: &sources.ConfigError{Field: "metadata.value", Detail: `"ten" is not a number`},
		},
		"zero value": {
			cfg:     trigger(sourcetest.WithMetadata("value", "0")),
			wantErr: &sources.ConfigError{Field: "metadata.value", Detail: "must be greater than 0, got 0"},
		},
		"negative value": {
			cfg:     trigger(sourcetest.WithMetadata("value", "-1.5")),
			wantErr: &sources.ConfigError{Field: "metadata.value", Detail: "must be greater than 0, got -1.5"},
		},
		"non-numeric activationValue": {
			cfg:     trigger(sourcetest.WithMetadata("activationValue", "NaN")),
			wantErr: &sources.ConfigError{Field: "metadata.activationValue", Detail: `"NaN" is not a number`},
		},
		"non-numeric valueIfNull": {
			cfg:     trigger(sourcetest.WithMetadata("valueIfNull", "none")),
			wantErr: &sources.ConfigError{Field: "metadata.valueIfNull", Detail: `"none" is not a number`},
		},
		"deprecated subscriptionSize": {
			cfg: trigger(sourcetest.WithMetadata("subscriptionSize", "5")),
			wantErr: &sources.ConfigError{Field: "metadata.subscriptionSize",
				Detail: "is deprecated and not supported; use mode and value"},
		},
		"unknown aggregation": {
			cfg: trigger(sourcetest.WithMetadata("aggregation", "avg")),
			wantErr: &sources.ConfigError{Field: "metadata.aggregation",
				Detail: `"avg" is not supported (use mean, median, variance, stddev, sum, count, percentile99, percentile95, percentile50 or percentile5)`},
		},
		"unsupported percentile": {
			cfg: trigger(sourcetest.WithMetadata("aggregation", "percentile42")),
			wantErr: &sources.ConfigError{Field: "metadata.aggregation",
				Detail: `"percentile42" is not supported (use mean, median, variance, stddev, sum, count, percentile99, percentile95, percentile50 or percentile5)`},
		},
		"horizon without unit": {
			cfg:     trigger(sourcetest.WithMetadata("timeHorizon", "2")),
			wantErr: &sources.ConfigError{Field: "metadata.timeHorizon", Detail: `"2" is not a positive duration (e.g. 2m, 90s)`},
		},
		"negative horizon": {
			cfg:     trigger(sourcetest.WithMetadata("timeHorizon", "-1m")),
			wantErr: &sources.ConfigError{Field: "metadata.timeHorizon", Detail: `"-1m" is not a positive duration (e.g. 2m, 90s)`},
		},
		"no credentials": {
			cfg: trigger(noCredentials),
			wantErr: &sources.ConfigError{Field: "metadata.credentialsFromEnv",
				Detail: "no credentials: set credentialsFromEnv or credentialsFromEnvFile, the authenticationRef parameter GoogleApplicationCredentials, or podIdentity provider gcp"},
		},
		"credentials env var missing": {
			cfg: trigger(sourcetest.WithMetadata("credentialsFromEnv", "NOPE")),
			wantErr: &sources.ConfigError{Field: "metadata.credentialsFromEnv",
				Detail: `environment variable "NOPE" is not set in the envSourceContainerName container`},
		},
		"credentials are not JSON": {
			cfg:     trigger(sourcetest.WithEnv("GCP_CREDS", `{"private_key":"`+secretKeyMaterial)),
			wantErr: &sources.ConfigError{Field: "metadata.credentialsFromEnv", Detail: "does not hold a JSON service account key"},
		},
		"external account credentials": {
			cfg: trigger(sourcetest.WithAuth("GoogleApplicationCredentials",
				`{"type":"external_account","credential_source":{"file":"/var/run/secrets/token"}}`)),
			wantErr: &sources.ConfigError{Field: "authenticationRef",
				Detail: `holds credentials of type "external_account"; only service_account keys are accepted (use podIdentity provider gcp for workload identity)`},
		},
		"credentials of an unknown type": {
			cfg:     trigger(sourcetest.WithEnv("GCP_CREDS", `{"type":"`+secretKeyMaterial+`"}`)),
			wantErr: &sources.ConfigError{Field: "metadata.credentialsFromEnv", Detail: "holds credentials of an unknown type; only service_account keys are accepted"},
		},
		"key without private key": {
			cfg: trigger(sourcetest.WithEnv("GCP_CREDS", `{"type":"service_account","client_email":"a@b.c"}`)),
			wantErr: &sources.ConfigError{Field: "metadata.credentialsFromEnv",
				Detail: "holds a service account key without client_email or private_key"},
		},
		"credentials file not resolved by the controller (never read from the dispatcher's file system)": {
			cfg: trigger(noCredentials, sourcetest.WithMetadata("credentialsFromEnvFile", "CREDS_FILE"),
				sourcetest.WithEnv("CREDS_FILE", missingFile)),
			wantErr: &sources.ConfigError{Field: "metadata.credentialsFromEnvFile",
				Detail: `the file that environment variable "CREDS_FILE" names was not resolved from a Secret volume of the envSourceContainerName container`},
		},
		"credentials file larger than 64 KiB": {
			cfg: trigger(noCredentials, sourcetest.WithMetadata("credentialsFromEnvFile", "CREDS_FILE"),
				sourcetest.WithEnv("CREDS_FILE", missingFile), withEnvFile("CREDS_FILE", strings.Repeat("x", sources.MaxValueBytes+1))),
			wantErr: &sources.ConfigError{Field: "metadata.credentialsFromEnvFile",
				Detail: "the credentials file holds 65537 bytes, more than the 65536 a credential may have"},
		},
		"credentials file env var missing": {
			cfg: trigger(noCredentials, sourcetest.WithMetadata("credentialsFromEnvFile", "CREDS_FILE")),
			wantErr: &sources.ConfigError{Field: "metadata.credentialsFromEnvFile",
				Detail: `environment variable "CREDS_FILE" is not set in the envSourceContainerName container`},
		},
		"foreign pod identity": {
			cfg: trigger(sourcetest.WithPodIdentity("azure-workload")),
			wantErr: &sources.ConfigError{Field: "authenticationRef",
				Detail: `podIdentity provider "azure-workload" cannot authenticate to Google Cloud (use gcp, or a service account key)`},
		},
		"pod identity and a bare name without any project": {
			cfg: trigger(noCredentials, sourcetest.WithPodIdentity("gcp")),
			wantErr: &sources.ConfigError{Field: "metadata.subscriptionName",
				Detail: `"jobs-sub" names no project: write projects/<project>/subscriptions/jobs-sub, set projectID, or use credentials (credentialsFromEnv) whose key has project_id`},
		},
		"key without project_id and a bare name": {
			cfg: trigger(sourcetest.WithEnv("GCP_CREDS", `{"type":"service_account","client_email":"a@b.c","private_key":"k"}`)),
			wantErr: &sources.ConfigError{Field: "metadata.subscriptionName",
				Detail: `"jobs-sub" names no project: write projects/<project>/subscriptions/jobs-sub, set projectID, or use credentials (credentialsFromEnv) whose key has project_id`},
		},
		"invalid projectID": {
			cfg:     trigger(sourcetest.WithMetadata("projectID", "My Project")),
			wantErr: &sources.ConfigError{Field: "metadata.projectID", Detail: `"My Project" is not a valid project ID`},
		},
		"insecure without endpoint": {
			cfg: trigger(sourcetest.WithMetadata("monitoringInsecure", "true")),
			wantErr: &sources.ConfigError{Field: "metadata.monitoringInsecure",
				Detail: "needs monitoringEndpoint (it is only for a local fake or emulator)"},
		},
		"endpoint with a scheme": {
			cfg:     trigger(sourcetest.WithMetadata("monitoringEndpoint", "http://127.0.0.1:8085")),
			wantErr: &sources.ConfigError{Field: "metadata.monitoringEndpoint", Detail: `"http://127.0.0.1:8085" is not host:port`},
		},
		"endpoint without port": {
			cfg:     trigger(sourcetest.WithMetadata("monitoringEndpoint", "localhost")),
			wantErr: &sources.ConfigError{Field: "metadata.monitoringEndpoint", Detail: `"localhost" is not host:port`},
		},
		"non-boolean monitoringInsecure": {
			cfg: trigger(sourcetest.WithMetadata("monitoringEndpoint", "127.0.0.1:1"),
				sourcetest.WithMetadata("monitoringInsecure", "yes please")),
			wantErr: &sources.ConfigError{Field: "metadata.monitoringInsecure",
				Detail: `"yes please" is not a boolean (use true or false)`},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Parse(tc.cfg)
			sourcetest.AssertConfigError(t, err, tc.wantErr)
			if diff := cmp.Diff(Metadata{}, got); diff != "" {
				t.Errorf("Parse returned metadata with an error (-want +got):\n%s", diff)
			}
			if strings.Contains(err.Error(), secretKeyMaterial) {
				t.Errorf("error %q quotes the private key", err)
			}
			if _, nerr := New(t.Context(), tc.cfg); !sources.IsConfigError(nerr) {
				t.Errorf("New error = %v, want a ConfigError", nerr)
			}
		})
	}
}

func TestParseReadsTheControllerProject(t *testing.T) {
	t.Setenv("GOOGLE_CLOUD_PROJECT", "ctrl-project")
	got, err := Parse(trigger(noCredentials, sourcetest.WithPodIdentity("gcp")))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got.Project != "ctrl-project" {
		t.Errorf("Project = %q, want ctrl-project", got.Project)
	}
	// Only pod identity falls back to it.
	_, err = Parse(trigger(sourcetest.WithEnv("GCP_CREDS", `{"type":"service_account","client_email":"a@b.c","private_key":"k"}`)))
	if !sources.IsConfigError(err) {
		t.Errorf("Parse with a key without project_id: error = %v, want a ConfigError", err)
	}
}

func TestSnakeCase(t *testing.T) {
	cases := map[string]string{
		"PullAckRequestCount":     "pull_ack_request_count",
		"AckLatencies":            "ack_latencies",
		"BacklogBytes":            "backlog_bytes",
		"NumOutstandingMessages":  "num_outstanding_messages",
		"NumUndeliveredMessages":  "num_undelivered_messages",
		"OldestUnackedMessageAge": "oldest_unacked_message_age",
	}
	for in, want := range cases {
		t.Run(in, func(t *testing.T) {
			if got := snakeCase(in); got != want {
				t.Errorf("snakeCase(%q) = %q, want %q", in, got, want)
			}
		})
	}
}
