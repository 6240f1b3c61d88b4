package pubsub

import (
	"encoding/json"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/kubedispatch/kubedispatch/sources"
)

// Metadata keys and TriggerAuthentication parameters of the gcp-pubsub trigger.
const (
	keySubscriptionName       = "subscriptionName"
	keyTopicName              = "topicName"
	keyMode                   = "mode"
	keyValue                  = "value"
	keyActivationValue        = "activationValue"
	keyAggregation            = "aggregation"
	keyTimeHorizon            = "timeHorizon"
	keyValueIfNull            = "valueIfNull"
	keySubscriptionSize       = "subscriptionSize"
	keyCredentialsFromEnv     = "credentialsFromEnv"
	keyCredentialsFromEnvFile = "credentialsFromEnvFile"
	keyProjectID              = "projectID"
	keyMonitoringEndpoint     = "monitoringEndpoint"
	keyMonitoringInsecure     = "monitoringInsecure"

	authGoogleApplicationCredentials = "GoogleApplicationCredentials"

	// envGoogleCloudProject is the controller's environment variable read, with podIdentity gcp only, when nothing
	// else names the project.
	envGoogleCloudProject = "GOOGLE_CLOUD_PROJECT"
)

// Defaults of the gcp-pubsub trigger (KEDA's).
const (
	DefaultMode                  = "SubscriptionSize"
	DefaultValue                 = 10.0
	DefaultTimeHorizon           = 2 * time.Minute
	DefaultAggregatedTimeHorizon = 5 * time.Minute
)

const (
	// defaultModeMetric is what the default mode, SubscriptionSize, stands for.
	defaultModeMetric             = "NumUndeliveredMessages"
	metricPrefix                  = "pubsub.googleapis.com/"
	podIdentityGCP                = "gcp"
	serviceAccountCredentialsType = "service_account"
)

// Resource kinds a trigger reads.
const (
	ResourceSubscription = "subscription"
	ResourceTopic        = "topic"
)

// Auth says how the source authenticates to Cloud Monitoring.
type Auth string

// Authentication modes.
const (
	// AuthServiceAccountKey uses a service account key (JSON) from the trigger's configuration.
	AuthServiceAccountKey Auth = "ServiceAccountKey"
	// AuthPodIdentity uses application default credentials (podIdentity provider gcp).
	AuthPodIdentity Auth = "PodIdentity"
	// AuthNone sends no credentials; only with monitoringInsecure, for a local fake or emulator.
	AuthNone Auth = "None"
)

// Metadata is a parsed gcp-pubsub trigger. It holds no secrets.
type Metadata struct {
	// Resource is ResourceSubscription or ResourceTopic.
	Resource string
	// ResourceID is the subscription or topic ID, without its project.
	ResourceID string
	// Project is the Google Cloud project that owns the resource.
	Project string
	// Mode is the PascalCase metric name, after resolving the alias SubscriptionSize.
	Mode string
	// MetricType is the Cloud Monitoring metric type, e.g.
	// pubsub.googleapis.com/subscription/num_undelivered_messages.
	MetricType string
	// Value is the per-Job target T.
	Value float64
	// ActivationValue is the metric value the trigger must exceed to be active.
	ActivationValue float64
	// Aggregation is the aggregation as configured (e.g. "mean" or "percentile99"), or "" for the raw metric.
	Aggregation string
	// TimeHorizon is how far back the query looks.
	TimeHorizon time.Duration
	// ValueIfNull, when not nil, is the value used when Cloud Monitoring returns no time series.
	ValueIfNull *float64
	// MonitoringEndpoint replaces the Cloud Monitoring endpoint (host:port) when not empty.
	MonitoringEndpoint string
	// MonitoringInsecure dials MonitoringEndpoint without TLS and without credentials.
	MonitoringInsecure bool
	// Auth is how the source authenticates.
	Auth Auth
}

// ResourceName returns the resource's full name, e.g. projects/p/subscriptions/s.
func (m Metadata) ResourceName() string {
	return "projects/" + m.Project + "/" + m.Resource + "s/" + m.ResourceID
}

// Parse validates a gcp-pubsub trigger configuration, including its authentication, and returns its metadata. Every
// error is a *sources.ConfigError. It reads the controller's GOOGLE_CLOUD_PROJECT environment variable with
// podIdentity gcp, and no file: credentialsFromEnvFile's content is in cfg.EnvFiles, resolved by the controller.
func Parse(cfg sources.Config) (Metadata, error) {
	m, _, err := parse(cfg, os.Getenv(envGoogleCloudProject))
	return m, err
}

var (
	// resourceIDPattern is Pub/Sub's rule for subscription and topic IDs. Enforcing it also keeps the IDs safe to
	// quote in a Cloud Monitoring filter.
	resourceIDPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$`)
	// projectIDPattern accepts project IDs, including domain-scoped ones (example.com:project).
	projectIDPattern = regexp.MustCompile(`^(?:[a-z0-9][a-z0-9.\-]*:)?[a-z][a-z0-9\-]{4,28}[a-z0-9]$`)
	// pascalCasePattern is what a mode must look like.
	pascalCasePattern = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
)

// parse returns the metadata and the service account key (nil unless Auth is AuthServiceAccountKey). envProject is
// the controller's GOOGLE_CLOUD_PROJECT, used only with podIdentity gcp.
func parse(cfg sources.Config, envProject string) (Metadata, []byte, error) {
	m, key, _, err := parseWithKeyField(cfg, envProject)
	return m, key, err
}

// parseWithKeyField is parse that also returns the field the service account key came from ("" without a key), so
// the endpoint policy knows whose key it is.
func parseWithKeyField(cfg sources.Config, envProject string) (Metadata, []byte, string, error) {
	p := cfg.Params()
	var m Metadata
	var err error

	if p.Has(keySubscriptionSize) {
		return Metadata{}, nil, "", sources.ConfigErrorf(sources.MetadataField(keySubscriptionSize),
			"is deprecated and not supported; use mode and value")
	}
	project, err := parseResource(p, &m)
	if err != nil {
		return Metadata{}, nil, "", err
	}
	if err := parseMode(p, &m); err != nil {
		return Metadata{}, nil, "", err
	}
	if m.Value, err = p.Float(keyValue, DefaultValue); err != nil {
		return Metadata{}, nil, "", err
	}
	if m.Value <= 0 {
		_, field, _, _ := p.Lookup(keyValue)
		return Metadata{}, nil, "", sources.ConfigErrorf(field, "must be greater than 0, got %s", sources.QuoteNumber(keyValue, field, m.Value))
	}
	if m.ActivationValue, err = p.Float(keyActivationValue, 0); err != nil {
		return Metadata{}, nil, "", err
	}
	var field string
	if m.Aggregation, field, err = p.Value(keyAggregation, false); err != nil {
		return Metadata{}, nil, "", err
	}
	if m.Aggregation != "" {
		if _, ok := aggregationFor(m.Aggregation); !ok {
			return Metadata{}, nil, "", sources.ConfigErrorf(field,
				"%s is not supported (use mean, median, variance, stddev, sum, count, percentile99, percentile95, percentile50 or percentile5)",
				sources.QuoteValue(keyAggregation, field, m.Aggregation))
		}
	}
	if err := parseTimeHorizon(p, &m); err != nil {
		return Metadata{}, nil, "", err
	}
	if p.Has(keyValueIfNull) {
		v, err := p.Float(keyValueIfNull, 0)
		if err != nil {
			return Metadata{}, nil, "", err
		}
		m.ValueIfNull = &v
	}
	if err := parseEndpoint(p, &m); err != nil {
		return Metadata{}, nil, "", err
	}
	key, keyProject, keyField, err := credentialsFor(cfg, &m)
	if err != nil {
		return Metadata{}, nil, "", err
	}
	if m.Project, err = resolveProject(p, &m, project, keyProject, keyField, envProject); err != nil {
		return Metadata{}, nil, "", err
	}
	if m.Auth != AuthServiceAccountKey {
		keyField = ""
	}
	return m, key, keyField, nil
}

// parseResource reads subscriptionName or topicName into m and returns the project a full resource name gave.
func parseResource(p sources.Params, m *Metadata) (string, error) {
	hasSub, hasTopic := p.Has(keySubscriptionName), p.Has(keyTopicName)
	switch {
	case hasSub && hasTopic:
		return "", sources.ConfigErrorf(sources.MetadataField(keySubscriptionName),
			"and %s are both set; set exactly one", keyTopicName)
	case !hasSub && !hasTopic:
		return "", sources.ConfigErrorf(sources.MetadataField(keySubscriptionName),
			"or %s is required (set exactly one, or its FromEnv variant)", keyTopicName)
	}
	key, collection := keySubscriptionName, "subscriptions"
	m.Resource = ResourceSubscription
	if hasTopic {
		key, collection = keyTopicName, "topics"
		m.Resource = ResourceTopic
	}
	v, field, _, err := p.Lookup(key)
	if err != nil {
		return "", err
	}
	if v == "" {
		// Set only as an empty FromEnv variable.
		return "", sources.ConfigErrorf(field, "is empty")
	}
	var project string
	id := v
	if strings.HasPrefix(v, "projects/") {
		parts := strings.Split(v, "/")
		if len(parts) != 4 || parts[2] != collection {
			return "", sources.ConfigErrorf(field, "%s is not a %s ID nor projects/<project>/%s/<id>", sources.QuoteValue(key, field, v), m.Resource, collection)
		}
		project, id = parts[1], parts[3]
		if !projectIDPattern.MatchString(project) {
			if field != sources.MetadataField(key) {
				return "", sources.ConfigErrorf(field, "%s has an invalid project ID", sources.HiddenValue)
			}
			return "", sources.ConfigErrorf(field, "%q has an invalid project ID %q", v, project)
		}
	}
	if !resourceIDPattern.MatchString(id) {
		return "", sources.ConfigErrorf(field, "%s is not a valid %s ID (3-255 letters, digits or -_.~+%%, starting with a letter)",
			sources.QuoteValue(key, field, id), m.Resource)
	}
	m.ResourceID = id
	return project, nil
}

// parseMode resolves the mode into m.Mode and m.MetricType.
func parseMode(p sources.Params, m *Metadata) error {
	mode, field, err := p.Value(keyMode, false)
	if err != nil {
		return err
	}
	if mode == "" || mode == DefaultMode {
		mode = defaultModeMetric
	}
	if !pascalCasePattern.MatchString(mode) {
		return sources.ConfigErrorf(field,
			"%s is not a PascalCase Pub/Sub metric name (e.g. SubscriptionSize, NumUndeliveredMessages, OldestUnackedMessageAge)",
			sources.QuoteValue(keyMode, field, mode))
	}
	if m.Resource == ResourceTopic && mode == defaultModeMetric {
		return sources.ConfigErrorf(field,
			"must name a topic metric with topicName (there is no topic/num_undelivered_messages), e.g. SendMessageOperationCount")
	}
	m.Mode = mode
	m.MetricType = metricPrefix + m.Resource + "/" + snakeCase(mode)
	return nil
}

// snakeCase turns a PascalCase metric name into Cloud Monitoring's snake_case, e.g. PullAckRequestCount into
// pull_ack_request_count.
func snakeCase(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

func parseTimeHorizon(p sources.Params, m *Metadata) error {
	m.TimeHorizon = DefaultTimeHorizon
	if m.Aggregation != "" {
		m.TimeHorizon = DefaultAggregatedTimeHorizon
	}
	v, field, ok, err := p.Lookup(keyTimeHorizon)
	if err != nil || !ok {
		return err
	}
	d, perr := time.ParseDuration(v)
	if perr != nil || d <= 0 {
		return sources.ConfigErrorf(field, "%s is not a positive duration (e.g. 2m, 90s)", sources.QuoteValue(keyTimeHorizon, field, v))
	}
	m.TimeHorizon = d
	return nil
}

func parseEndpoint(p sources.Params, m *Metadata) error {
	var err error
	var field string
	if m.MonitoringEndpoint, field, err = p.Value(keyMonitoringEndpoint, false); err != nil {
		return err
	}
	if m.MonitoringEndpoint != "" {
		if u, perr := url.Parse("//" + m.MonitoringEndpoint); perr != nil || u.Host == "" || u.Port() == "" ||
			u.Host != m.MonitoringEndpoint {
			return sources.ConfigErrorf(field,
				"%s is not host:port", sources.QuoteValue(keyMonitoringEndpoint, field, m.MonitoringEndpoint))
		}
	}
	if m.MonitoringInsecure, err = p.Bool(keyMonitoringInsecure, false); err != nil {
		return err
	}
	if m.MonitoringInsecure && m.MonitoringEndpoint == "" {
		return sources.ConfigErrorf(sources.MetadataField(keyMonitoringInsecure),
			"needs %s (it is only for a local fake or emulator)", keyMonitoringEndpoint)
	}
	return nil
}

// credentialsFor sets m.Auth and returns the service account key, its project_id and the field it came from. Pod
// identity gcp wins, then the TriggerAuthentication parameter, then credentialsFromEnv, then credentialsFromEnvFile
// (KEDA's order).
func credentialsFor(cfg sources.Config, m *Metadata) (key []byte, keyProject, field string, err error) {
	switch cfg.PodIdentity {
	case podIdentityGCP:
		m.Auth = AuthPodIdentity
		return nil, "", "", nil
	case "":
	default:
		return nil, "", "", sources.ConfigErrorf(sources.AuthField,
			"podIdentity provider %q cannot authenticate to Google Cloud (use gcp, or a service account key)", cfg.PodIdentity)
	}
	switch {
	case cfg.AuthParams[authGoogleApplicationCredentials] != "":
		field = sources.AuthField
		key = []byte(cfg.AuthParams[authGoogleApplicationCredentials])
	case cfg.Metadata[keyCredentialsFromEnv] != "":
		field = sources.MetadataField(keyCredentialsFromEnv)
		name := cfg.Metadata[keyCredentialsFromEnv]
		v, ok := cfg.Env[name]
		if !ok || v == "" {
			return nil, "", "", sources.ConfigErrorf(field,
				"environment variable %q is not set in the envSourceContainerName container", name)
		}
		key = []byte(v)
	case cfg.Metadata[keyCredentialsFromEnvFile] != "":
		// The controller resolved the file from the Secret volume the container mounts at that path; the file
		// system of the controller itself is never read (a tenant would choose which of its files to read).
		field = sources.MetadataField(keyCredentialsFromEnvFile)
		name := cfg.Metadata[keyCredentialsFromEnvFile]
		path, ok := cfg.Env[name]
		if !ok || path == "" {
			return nil, "", "", sources.ConfigErrorf(field,
				"environment variable %q is not set in the envSourceContainerName container", name)
		}
		content, ok := cfg.EnvFiles[name]
		if !ok {
			return nil, "", "", sources.ConfigErrorf(field,
				"the file that environment variable %q names was not resolved from a Secret volume of the envSourceContainerName container", name)
		}
		if len(content) > sources.MaxValueBytes {
			return nil, "", "", sources.ConfigErrorf(field, "the credentials file holds %d bytes, more than the %d a credential may have",
				len(content), sources.MaxValueBytes)
		}
		key = []byte(content)
	default:
		if m.MonitoringInsecure {
			m.Auth = AuthNone
			return nil, "", "", nil
		}
		return nil, "", "", sources.ConfigErrorf(sources.MetadataField(keyCredentialsFromEnv),
			"no credentials: set %s or %s, the authenticationRef parameter %s, or podIdentity provider gcp",
			keyCredentialsFromEnv, keyCredentialsFromEnvFile, authGoogleApplicationCredentials)
	}
	keyProject, err = checkServiceAccountKey(field, key)
	if err != nil {
		return nil, "", "", err
	}
	if m.MonitoringInsecure {
		// The key was checked, but an insecure endpoint gets no credentials.
		m.Auth = AuthNone
		return nil, keyProject, field, nil
	}
	m.Auth = AuthServiceAccountKey
	return key, keyProject, field, nil
}

// checkServiceAccountKey accepts only service account keys: other credential types (external accounts, impersonation)
// carry URLs and commands that the controller would follow with its own identity. Errors never quote the key.
func checkServiceAccountKey(field string, key []byte) (string, error) {
	var k struct {
		Type        string `json:"type"`
		ProjectID   string `json:"project_id"`
		ClientEmail string `json:"client_email"`
		PrivateKey  string `json:"private_key"`
	}
	if err := json.Unmarshal(key, &k); err != nil {
		return "", sources.ConfigErrorf(field, "does not hold a JSON service account key")
	}
	switch k.Type {
	case serviceAccountCredentialsType:
	case "authorized_user", "external_account", "impersonated_service_account", "external_account_authorized_user",
		"gdch_service_account":
		return "", sources.ConfigErrorf(field,
			"holds credentials of type %q; only service_account keys are accepted (use podIdentity provider gcp for workload identity)", k.Type)
	default:
		return "", sources.ConfigErrorf(field, "holds credentials of an unknown type; only service_account keys are accepted")
	}
	if k.ClientEmail == "" || k.PrivateKey == "" {
		return "", sources.ConfigErrorf(field, "holds a service account key without client_email or private_key")
	}
	return k.ProjectID, nil
}

// resolveProject picks the project: the resource name's, then projectID, then the key's project_id, then (pod
// identity only) the controller's GOOGLE_CLOUD_PROJECT.
func resolveProject(p sources.Params, m *Metadata, fromName, fromKey, keyField, fromEnv string) (string, error) {
	if fromName != "" {
		return fromName, nil
	}
	v, field, ok, err := p.Lookup(keyProjectID)
	if err != nil {
		return "", err
	}
	if ok {
		if !projectIDPattern.MatchString(v) {
			return "", sources.ConfigErrorf(field, "%s is not a valid project ID", sources.QuoteValue(keyProjectID, field, v))
		}
		return v, nil
	}
	if fromKey != "" {
		if !projectIDPattern.MatchString(fromKey) {
			// The key came from a Secret: its project_id is not shown.
			return "", sources.ConfigErrorf(keyField, "the service account key's project_id is not a valid project ID")
		}
		return fromKey, nil
	}
	if m.Auth == AuthPodIdentity && fromEnv != "" {
		if !projectIDPattern.MatchString(fromEnv) {
			return "", sources.ConfigErrorf(sources.AuthField,
				"the controller's %s %q is not a valid project ID", envGoogleCloudProject, fromEnv)
		}
		return fromEnv, nil
	}
	key, collection := keySubscriptionName, "subscriptions"
	if m.Resource == ResourceTopic {
		key, collection = keyTopicName, "topics"
	}
	_, idField, _, _ := p.Lookup(key)
	id := m.ResourceID
	if idField != sources.MetadataField(key) {
		id = "<id>"
	}
	return "", sources.ConfigErrorf(idField,
		"%s names no project: write projects/<project>/%s/%s, set %s, or use credentials (%s) whose key has project_id",
		sources.QuoteValue(key, idField, m.ResourceID), collection, id, keyProjectID, keyCredentialsFromEnv)
}

func formatFloat(f float64) string {
	return strconv.FormatFloat(f, 'g', -1, 64)
}
