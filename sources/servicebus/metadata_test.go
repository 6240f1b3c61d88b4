package servicebus

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubedispatch/kubedispatch/internal/sourcetest"
	"github.com/kubedispatch/kubedispatch/sources"
)

// secretKey is the SharedAccessKey of every test connection string; no error may quote it.
const secretKey = "c2VjcmV0LWtleS1kby1ub3QtbGVhaw=="

// connString returns a connection string for host with the test key.
func connString(host string) string {
	return "Endpoint=sb://" + host + "/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=" + secretKey
}

// trigger builds an azure-servicebus config reading queue jobs with a connection string from the env var SB_CONN,
// changed by the options.
func trigger(opts ...sourcetest.Option) sources.Config {
	defaults := []sourcetest.Option{
		sourcetest.WithMetadata("queueName", "jobs"),
		sourcetest.WithMetadata("connectionFromEnv", "SB_CONN"),
		sourcetest.WithEnv("SB_CONN", connString("jobs-ns.servicebus.windows.net")),
	}
	return sourcetest.Config(Type, append(defaults, opts...)...)
}

// workloadIdentity replaces the connection string with podIdentity azure-workload.
func workloadIdentity(c *sources.Config) {
	delete(c.Metadata, "connectionFromEnv")
	c.Env = map[string]string{}
	c.PodIdentity = "azure-workload"
}

// subscriptionEntity turns the default queue trigger into one for topic orders, subscription workers.
func subscriptionEntity(c *sources.Config) {
	delete(c.Metadata, "queueName")
	c.Metadata["topicName"] = "orders"
	c.Metadata["subscriptionName"] = "workers"
}

// meta builds the Metadata of the default trigger, changed by the options.
func meta(opts ...func(*Metadata)) Metadata {
	m := Metadata{
		Entity:       EntityQueue,
		QueueName:    "jobs",
		MessageCount: 5,
		Operation:    OperationSum,
		Namespace:    "jobs-ns.servicebus.windows.net",
		Auth:         AuthConnectionString,
	}
	for _, o := range opts {
		o(&m)
	}
	return m
}

func TestParse(t *testing.T) {
	cases := map[string]struct {
		cfg  sources.Config
		want Metadata
	}{
		"queue defaults": {
			cfg:  trigger(),
			want: meta(),
		},
		"subscription": {
			cfg: trigger(subscriptionEntity),
			want: meta(func(m *Metadata) {
				m.Entity, m.QueueName, m.TopicName, m.SubscriptionName = EntitySubscription, "", "orders", "workers"
			}),
		},
		"names from env": {
			cfg: trigger(sourcetest.WithoutMetadata("queueName"), sourcetest.WithMetadata("topicNameFromEnv", "TOPIC"),
				sourcetest.WithEnv("TOPIC", "t1"),
				sourcetest.WithMetadata("subscriptionNameFromEnv", "SUB"), sourcetest.WithEnv("SUB", "s1")),
			want: meta(func(m *Metadata) {
				m.Entity, m.QueueName, m.TopicName, m.SubscriptionName = EntitySubscription, "", "t1", "s1"
			}),
		},
		"counts, regex and operation": {
			cfg: trigger(sourcetest.WithMetadata("messageCount", "1"),
				sourcetest.WithMetadata("activationMessageCount", "3"),
				sourcetest.WithMetadata("useRegex", "true"), sourcetest.WithMetadata("queueName", "jobs-.*"),
				sourcetest.WithMetadata("operation", "avg")),
			want: meta(func(m *Metadata) {
				m.MessageCount, m.ActivationMessageCount, m.UseRegex, m.QueueName, m.Operation = 1, 3, true, "jobs-.*", OperationAvg
			}),
		},
		"connection from the TriggerAuthentication": {
			cfg: trigger(sourcetest.WithoutMetadata("connectionFromEnv"), sourcetest.WithAuth("connection",
				connString("auth-ns.servicebus.windows.net"))),
			want: meta(func(m *Metadata) { m.Namespace = "auth-ns.servicebus.windows.net" }),
		},
		"connection with a shared access signature": {
			cfg:  trigger(sourcetest.WithEnv("SB_CONN", "Endpoint=sb://sas-ns.servicebus.windows.net;SharedAccessSignature=SharedAccessSignature sr=x&sig=y&se=1&skn=k")),
			want: meta(func(m *Metadata) { m.Namespace = "sas-ns.servicebus.windows.net" }),
		},
		"workload identity in the public cloud": {
			cfg: trigger(workloadIdentity, sourcetest.WithMetadata("namespace", "jobs-ns")),
			want: meta(func(m *Metadata) {
				m.Auth, m.Cloud, m.Namespace = AuthWorkloadIdentity, CloudPublic, "jobs-ns.servicebus.windows.net"
			}),
		},
		"workload identity wins over a connection string": {
			cfg: trigger(sourcetest.WithPodIdentity("azure-workload"), sourcetest.WithMetadata("namespace", "jobs-ns")),
			want: meta(func(m *Metadata) {
				m.Auth, m.Cloud, m.Namespace = AuthWorkloadIdentity, CloudPublic, "jobs-ns.servicebus.windows.net"
			}),
		},
		"workload identity in the China cloud, any case": {
			cfg: trigger(workloadIdentity, sourcetest.WithMetadata("namespace", "jobs-ns"),
				sourcetest.WithMetadata("cloud", "azurechinacloud")),
			want: meta(func(m *Metadata) {
				m.Auth, m.Cloud, m.Namespace = AuthWorkloadIdentity, CloudChina, "jobs-ns.servicebus.chinacloudapi.cn"
			}),
		},
		"workload identity in the US government cloud ignores endpointSuffix": {
			cfg: trigger(workloadIdentity, sourcetest.WithMetadata("namespace", "jobs-ns"),
				sourcetest.WithMetadata("cloud", "AzureUSGovernmentCloud"),
				sourcetest.WithMetadata("endpointSuffix", "servicebus.example.net")),
			want: meta(func(m *Metadata) {
				m.Auth, m.Cloud, m.Namespace = AuthWorkloadIdentity, CloudUSGovernment, "jobs-ns.servicebus.usgovcloudapi.net"
			}),
		},
		"workload identity in a private cloud": {
			cfg: trigger(workloadIdentity, sourcetest.WithMetadata("namespace", "jobs-ns"),
				sourcetest.WithMetadata("cloud", "Private"),
				sourcetest.WithMetadata("endpointSuffix", "servicebus.example.net")),
			want: meta(func(m *Metadata) {
				m.Auth, m.Cloud, m.Namespace = AuthWorkloadIdentity, CloudPrivate, "jobs-ns.servicebus.example.net"
			}),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Parse(tc.cfg)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Parse mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const badConn = "is not a valid Service Bus connection string: "
	cases := map[string]struct {
		cfg     sources.Config
		wantErr *sources.ConfigError
	}{
		"no queue nor topic": {
			cfg:     trigger(sourcetest.WithoutMetadata("queueName")),
			wantErr: &sources.ConfigError{Field: "metadata.queueName", Detail: "or topicName with subscriptionName is required"},
		},
		"queue and topic": {
			cfg: trigger(sourcetest.WithMetadata("topicName", "orders"),
				sourcetest.WithMetadata("subscriptionName", "workers")),
			wantErr: &sources.ConfigError{Field: "metadata.queueName",
				Detail: "and topicName are both set; set queueName, or topicName with subscriptionName"},
		},
		"queue and subscription": {
			cfg:     trigger(sourcetest.WithMetadata("subscriptionName", "workers")),
			wantErr: &sources.ConfigError{Field: "metadata.subscriptionName", Detail: "is only used with topicName, not with queueName"},
		},
		"topic without subscription": {
			cfg:     trigger(sourcetest.WithoutMetadata("queueName"), sourcetest.WithMetadata("topicName", "orders")),
			wantErr: &sources.ConfigError{Field: "metadata.subscriptionName", Detail: "is required with topicName"},
		},
		"subscription without topic": {
			cfg: trigger(sourcetest.WithoutMetadata("queueName"),
				sourcetest.WithMetadata("subscriptionName", "workers")),
			wantErr: &sources.ConfigError{Field: "metadata.topicName", Detail: "is required with subscriptionName"},
		},
		"queue from a missing env var": {
			cfg: trigger(sourcetest.WithoutMetadata("queueName"), sourcetest.WithMetadata("queueNameFromEnv", "QUEUE")),
			wantErr: &sources.ConfigError{Field: "metadata.queueNameFromEnv",
				Detail: `environment variable "QUEUE" is not set in the envSourceContainerName container`},
		},
		"non-integer messageCount": {
			cfg:     trigger(sourcetest.WithMetadata("messageCount", "five")),
			wantErr: &sources.ConfigError{Field: "metadata.messageCount", Detail: `"five" is not an integer`},
		},
		"zero messageCount": {
			cfg:     trigger(sourcetest.WithMetadata("messageCount", "0")),
			wantErr: &sources.ConfigError{Field: "metadata.messageCount", Detail: "must be at least 1, got 0"},
		},
		"negative messageCount": {
			cfg:     trigger(sourcetest.WithMetadata("messageCount", "-2")),
			wantErr: &sources.ConfigError{Field: "metadata.messageCount", Detail: "must be at least 1, got -2"},
		},
		"non-integer activationMessageCount": {
			cfg:     trigger(sourcetest.WithMetadata("activationMessageCount", "1.5")),
			wantErr: &sources.ConfigError{Field: "metadata.activationMessageCount", Detail: `"1.5" is not an integer`},
		},
		"non-boolean useRegex": {
			cfg:     trigger(sourcetest.WithMetadata("useRegex", "maybe")),
			wantErr: &sources.ConfigError{Field: "metadata.useRegex", Detail: `"maybe" is not a boolean (use true or false)`},
		},
		"bad regular expression": {
			cfg: trigger(sourcetest.WithMetadata("useRegex", "true"), sourcetest.WithMetadata("queueName", "jobs-(")),
			wantErr: &sources.ConfigError{Field: "metadata.queueName",
				Detail: "is not a valid regular expression (useRegex is true): error parsing regexp: missing closing ): `^(?:jobs-()$`"},
		},
		"bad subscription regular expression": {
			cfg: trigger(subscriptionEntity, sourcetest.WithMetadata("useRegex", "true"),
				sourcetest.WithMetadata("subscriptionName", "[")),
			wantErr: &sources.ConfigError{Field: "metadata.subscriptionName",
				Detail: "is not a valid regular expression (useRegex is true): error parsing regexp: missing closing ]: `[)$`"},
		},
		"unknown operation": {
			cfg:     trigger(sourcetest.WithMetadata("operation", "min")),
			wantErr: &sources.ConfigError{Field: "metadata.operation", Detail: `"min" is not supported (use sum, max or avg)`},
		},
		"no connection": {
			cfg: trigger(sourcetest.WithoutMetadata("connectionFromEnv")),
			wantErr: &sources.ConfigError{Field: "metadata.connection",
				Detail: "is required (set connectionFromEnv or the authenticationRef parameter connection, or use podIdentity provider azure-workload with namespace)"},
		},
		"connection env var missing": {
			cfg: trigger(sourcetest.WithMetadata("connectionFromEnv", "NOPE")),
			wantErr: &sources.ConfigError{Field: "metadata.connectionFromEnv",
				Detail: `environment variable "NOPE" is not set in the envSourceContainerName container`},
		},
		"connection string without key=value": {
			cfg:     trigger(sourcetest.WithEnv("SB_CONN", "Endpoint=sb://jobs-ns.servicebus.windows.net/;SharedAccessKeyName=k;secretwithoutequals")),
			wantErr: &sources.ConfigError{Field: "metadata.connectionFromEnv", Detail: badConn + "a part has no key=value form"},
		},
		"connection string without endpoint": {
			cfg:     trigger(sourcetest.WithEnv("SB_CONN", "SharedAccessKeyName=k;SharedAccessKey="+secretKey)),
			wantErr: &sources.ConfigError{Field: "metadata.connectionFromEnv", Detail: badConn + "it has no Endpoint"},
		},
		"connection string with a bare endpoint": {
			cfg: trigger(sourcetest.WithEnv("SB_CONN", "Endpoint=jobs-ns;SharedAccessKeyName=k;SharedAccessKey="+secretKey)),
			wantErr: &sources.ConfigError{Field: "metadata.connectionFromEnv",
				Detail: badConn + "its Endpoint is not a URL with a host (want sb://<namespace>.servicebus.windows.net/)"},
		},
		"connection string without key": {
			cfg: trigger(sourcetest.WithEnv("SB_CONN", "Endpoint=sb://jobs-ns.servicebus.windows.net/;SharedAccessKeyName=k")),
			wantErr: &sources.ConfigError{Field: "metadata.connectionFromEnv",
				Detail: badConn + "it needs SharedAccessKeyName and SharedAccessKey, or SharedAccessSignature"},
		},
		"connection string without key name": {
			cfg: trigger(sourcetest.WithEnv("SB_CONN", "Endpoint=sb://jobs-ns.servicebus.windows.net/;SharedAccessKey="+secretKey)),
			wantErr: &sources.ConfigError{Field: "metadata.connectionFromEnv",
				Detail: badConn + "it needs SharedAccessKeyName and SharedAccessKey, or SharedAccessSignature"},
		},
		"bad connection string from the TriggerAuthentication": {
			cfg: trigger(sourcetest.WithoutMetadata("connectionFromEnv"),
				sourcetest.WithAuth("connection", "Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey")),
			wantErr: &sources.ConfigError{Field: "authenticationRef", Detail: badConn + "a part has no key=value form"},
		},
		"workload identity without namespace": {
			cfg:     trigger(workloadIdentity),
			wantErr: &sources.ConfigError{Field: "metadata.namespace", Detail: "is required with podIdentity provider azure-workload"},
		},
		"workload identity with a host name as namespace": {
			cfg: trigger(workloadIdentity, sourcetest.WithMetadata("namespace", "jobs-ns.servicebus.windows.net")),
			wantErr: &sources.ConfigError{Field: "metadata.namespace",
				Detail: `"jobs-ns.servicebus.windows.net" is not a Service Bus namespace name (letters, digits and hyphens; not a host name)`},
		},
		"private cloud without endpointSuffix": {
			cfg: trigger(workloadIdentity, sourcetest.WithMetadata("namespace", "jobs-ns"),
				sourcetest.WithMetadata("cloud", "Private")),
			wantErr: &sources.ConfigError{Field: "metadata.endpointSuffix", Detail: "is required with cloud Private"},
		},
		"private cloud with a bad endpointSuffix": {
			cfg: trigger(workloadIdentity, sourcetest.WithMetadata("namespace", "jobs-ns"),
				sourcetest.WithMetadata("cloud", "Private"),
				sourcetest.WithMetadata("endpointSuffix", "https://servicebus.example.net")),
			wantErr: &sources.ConfigError{Field: "metadata.endpointSuffix",
				Detail: `"https://servicebus.example.net" is not a DNS suffix (e.g. servicebus.example.net)`},
		},
		"unknown cloud": {
			cfg: trigger(workloadIdentity, sourcetest.WithMetadata("namespace", "jobs-ns"),
				sourcetest.WithMetadata("cloud", "AzureGermanCloud")),
			wantErr: &sources.ConfigError{Field: "metadata.cloud",
				Detail: `"AzureGermanCloud" is not a known cloud (use AzurePublicCloud, AzureUSGovernmentCloud, AzureChinaCloud or Private with endpointSuffix)`},
		},
		"AAD pod identity": {
			cfg: trigger(sourcetest.WithPodIdentity("azure")),
			wantErr: &sources.ConfigError{Field: "authenticationRef",
				Detail: "podIdentity provider azure (AAD Pod Identity) is deprecated and not supported; use azure-workload"},
		},
		"foreign pod identity": {
			cfg: trigger(sourcetest.WithPodIdentity("gcp")),
			wantErr: &sources.ConfigError{Field: "authenticationRef",
				Detail: `podIdentity provider "gcp" cannot authenticate to Service Bus (use azure-workload, or a connection string)`},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Parse(tc.cfg)
			sourcetest.AssertConfigError(t, err, tc.wantErr)
			if diff := cmp.Diff(Metadata{}, got); diff != "" {
				t.Errorf("Parse returned metadata with an error (-want +got):\n%s", diff)
			}
			if strings.Contains(err.Error(), secretKey) {
				t.Errorf("error %q quotes the SharedAccessKey", err)
			}
			if _, nerr := New(t.Context(), tc.cfg); !sources.IsConfigError(nerr) {
				t.Errorf("New error = %v, want a ConfigError", nerr)
			}
		})
	}
}

func TestCombine(t *testing.T) {
	cases := map[string]struct {
		counts    []int64
		operation string
		want      int64
	}{
		"sum":                {counts: []int64{3, 10, 4}, operation: OperationSum, want: 17},
		"max":                {counts: []int64{3, 10, 4}, operation: OperationMax, want: 10},
		"avg divides down":   {counts: []int64{3, 10, 4}, operation: OperationAvg, want: 5},
		"max of zeros":       {counts: []int64{0, 0}, operation: OperationMax, want: 0},
		"nothing matched":    {operation: OperationAvg, want: 0},
		"single avg":         {counts: []int64{7}, operation: OperationAvg, want: 7},
		"beyond int32 range": {counts: []int64{2147483647, 2147483647}, operation: OperationSum, want: 4294967294},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := Combine(tc.counts, tc.operation); got != tc.want {
				t.Errorf("Combine(%v, %s) = %d, want %d", tc.counts, tc.operation, got, tc.want)
			}
		})
	}
}
