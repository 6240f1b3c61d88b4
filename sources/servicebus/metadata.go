package servicebus

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/kubedispatch/kubedispatch/sources"
)

// Metadata keys and TriggerAuthentication parameters of the azure-servicebus trigger.
const (
	keyQueueName              = "queueName"
	keyTopicName              = "topicName"
	keySubscriptionName       = "subscriptionName"
	keyMessageCount           = "messageCount"
	keyActivationMessageCount = "activationMessageCount"
	keyUseRegex               = "useRegex"
	keyOperation              = "operation"
	keyConnection             = "connection"
	keyNamespace              = "namespace"
	keyCloud                  = "cloud"
	keyEndpointSuffix         = "endpointSuffix"

	podIdentityAzureWorkload = "azure-workload"
	podIdentityAzure         = "azure"
)

// Defaults of the azure-servicebus trigger (KEDA's).
const (
	DefaultMessageCount int64 = 5
	DefaultOperation          = OperationSum
	DefaultCloud              = CloudPublic
)

// Entity kinds a trigger reads.
const (
	EntityQueue        = "queue"
	EntitySubscription = "subscription"
)

// Operations that combine the counts of the entities a regular expression matches.
const (
	OperationSum = "sum"
	OperationMax = "max"
	OperationAvg = "avg"
)

// Clouds and their Service Bus endpoint suffixes.
const (
	CloudPublic       = "AzurePublicCloud"
	CloudUSGovernment = "AzureUSGovernmentCloud"
	CloudChina        = "AzureChinaCloud"
	CloudPrivate      = "Private"
)

var cloudSuffixes = map[string]string{
	CloudPublic:       "servicebus.windows.net",
	CloudUSGovernment: "servicebus.usgovcloudapi.net",
	CloudChina:        "servicebus.chinacloudapi.cn",
}

// Auth says how the source authenticates to Service Bus.
type Auth string

// Authentication modes.
const (
	// AuthConnectionString uses a shared access connection string.
	AuthConnectionString Auth = "ConnectionString"
	// AuthWorkloadIdentity uses Azure AD workload identity (podIdentity provider azure-workload).
	AuthWorkloadIdentity Auth = "WorkloadIdentity"
)

// Metadata is a parsed azure-servicebus trigger. It holds no secrets.
type Metadata struct {
	// Entity is EntityQueue or EntitySubscription.
	Entity string
	// QueueName is the queue (a regular expression with UseRegex) when Entity is EntityQueue.
	QueueName string
	// TopicName is the topic when Entity is EntitySubscription.
	TopicName string
	// SubscriptionName is the subscription (a regular expression with UseRegex) when Entity is EntitySubscription.
	SubscriptionName string
	// MessageCount is the per-Job target T.
	MessageCount int64
	// ActivationMessageCount is the backlog the trigger must exceed to be active.
	ActivationMessageCount int64
	// UseRegex makes QueueName or SubscriptionName a regular expression that must match whole entity names.
	UseRegex bool
	// Operation combines the matched entities' counts: OperationSum, OperationMax or OperationAvg.
	Operation string
	// Namespace is the fully qualified namespace, e.g. jobs.servicebus.windows.net.
	Namespace string
	// Cloud is the cloud of a workload identity namespace; it is empty with a connection string.
	Cloud string
	// Auth is how the source authenticates.
	Auth Auth
}

// EntityName returns the entity as written in messages: the queue, or topic/Subscriptions/subscription.
func (m Metadata) EntityName() string {
	if m.Entity == EntityQueue {
		return m.QueueName
	}
	return m.TopicName + "/Subscriptions/" + m.SubscriptionName
}

// Parse validates an azure-servicebus trigger configuration, including its authentication, and returns its
// metadata. Every error is a *sources.ConfigError; none quotes a connection string.
func Parse(cfg sources.Config) (Metadata, error) {
	m, _, err := parse(cfg)
	return m, err
}

// namespacePattern is a Service Bus namespace name (not its fully qualified name).
var (
	namespacePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]$`)
	suffixPattern    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$`)
)

// parse returns the metadata and the connection string ("" with workload identity).
func parse(cfg sources.Config) (Metadata, string, error) {
	p := cfg.Params()
	var m Metadata
	var err error

	if err := parseEntity(p, &m); err != nil {
		return Metadata{}, "", err
	}
	if m.MessageCount, err = p.Int64(keyMessageCount, DefaultMessageCount); err != nil {
		return Metadata{}, "", err
	}
	if m.MessageCount < 1 {
		_, field, _, _ := p.Lookup(keyMessageCount)
		return Metadata{}, "", sources.ConfigErrorf(field,
			"must be at least 1, got %s", sources.QuoteNumber(keyMessageCount, field, m.MessageCount))
	}
	if m.ActivationMessageCount, err = p.Int64(keyActivationMessageCount, 0); err != nil {
		return Metadata{}, "", err
	}
	if m.UseRegex, err = p.Bool(keyUseRegex, false); err != nil {
		return Metadata{}, "", err
	}
	if m.UseRegex {
		key, name := keyQueueName, m.QueueName
		if m.Entity == EntitySubscription {
			key, name = keySubscriptionName, m.SubscriptionName
		}
		if _, rerr := compileName(name); rerr != nil {
			_, field, _, _ := p.Lookup(key)
			if field != sources.MetadataField(key) {
				// The parser's message quotes the expression.
				return Metadata{}, "", sources.ConfigErrorf(field,
					"%s is not a valid regular expression (useRegex is true)", sources.HiddenValue)
			}
			return Metadata{}, "", sources.ConfigErrorf(field,
				"is not a valid regular expression (useRegex is true): %v", rerr)
		}
	}
	var field string
	if m.Operation, field, err = p.Value(keyOperation, false); err != nil {
		return Metadata{}, "", err
	}
	switch m.Operation {
	case "":
		m.Operation = DefaultOperation
	case OperationSum, OperationMax, OperationAvg:
	default:
		return Metadata{}, "", sources.ConfigErrorf(field,
			"%s is not supported (use sum, max or avg)", sources.QuoteValue(keyOperation, field, m.Operation))
	}
	conn, err := parseAuth(cfg, &m)
	if err != nil {
		return Metadata{}, "", err
	}
	return m, conn, nil
}

// compileName anchors a regular expression so that it must match a whole entity name.
func compileName(expr string) (*regexp.Regexp, error) {
	return regexp.Compile("^(?:" + expr + ")$")
}

// parseEntity reads queueName, or topicName and subscriptionName.
func parseEntity(p sources.Params, m *Metadata) error {
	hasQueue, hasTopic, hasSub := p.Has(keyQueueName), p.Has(keyTopicName), p.Has(keySubscriptionName)
	var err error
	switch {
	case hasQueue && hasTopic:
		return sources.ConfigErrorf(sources.MetadataField(keyQueueName),
			"and %s are both set; set queueName, or topicName with subscriptionName", keyTopicName)
	case hasQueue && hasSub:
		return sources.ConfigErrorf(sources.MetadataField(keySubscriptionName),
			"is only used with topicName, not with queueName")
	case hasQueue:
		m.Entity = EntityQueue
		m.QueueName, err = p.String(keyQueueName, true)
		return err
	case hasTopic && !hasSub:
		return sources.ConfigErrorf(sources.MetadataField(keySubscriptionName), "is required with topicName")
	case hasTopic:
		m.Entity = EntitySubscription
		if m.TopicName, err = p.String(keyTopicName, true); err != nil {
			return err
		}
		m.SubscriptionName, err = p.String(keySubscriptionName, true)
		return err
	case hasSub:
		return sources.ConfigErrorf(sources.MetadataField(keyTopicName), "is required with subscriptionName")
	default:
		return sources.ConfigErrorf(sources.MetadataField(keyQueueName),
			"or topicName with subscriptionName is required")
	}
}

// parseAuth sets m.Auth, m.Namespace and m.Cloud and returns the connection string, if any.
func parseAuth(cfg sources.Config, m *Metadata) (string, error) {
	p := cfg.Params()
	switch cfg.PodIdentity {
	case "", "none":
	case podIdentityAzureWorkload:
		return "", parseWorkloadIdentity(p, m)
	case podIdentityAzure:
		return "", sources.ConfigErrorf(sources.AuthField,
			"podIdentity provider azure (AAD Pod Identity) is deprecated and not supported; use azure-workload")
	default:
		return "", sources.ConfigErrorf(sources.AuthField,
			"podIdentity provider %q cannot authenticate to Service Bus (use azure-workload, or a connection string)", cfg.PodIdentity)
	}
	conn, field, ok, err := p.Lookup(keyConnection)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", sources.ConfigErrorf(sources.MetadataField(keyConnection),
			"is required (set connectionFromEnv or the authenticationRef parameter connection, or use podIdentity provider azure-workload with namespace)")
	}
	host, detail := connectionNamespace(conn)
	if detail != "" {
		return "", sources.ConfigErrorf(field, "is not a valid Service Bus connection string: %s", detail)
	}
	m.Auth, m.Namespace = AuthConnectionString, host
	return conn, nil
}

func parseWorkloadIdentity(p sources.Params, m *Metadata) error {
	ns, field, err := p.Value(keyNamespace, false)
	if err != nil {
		return err
	}
	if ns == "" {
		return sources.ConfigErrorf(sources.MetadataField(keyNamespace),
			"is required with podIdentity provider azure-workload")
	}
	if !namespacePattern.MatchString(ns) {
		return sources.ConfigErrorf(field,
			"%s is not a Service Bus namespace name (letters, digits and hyphens; not a host name)", sources.QuoteValue(keyNamespace, field, ns))
	}
	cloud, cloudField, err := p.Value(keyCloud, false)
	if err != nil {
		return err
	}
	if cloud == "" {
		cloud = DefaultCloud
	}
	var suffix string
	switch {
	case strings.EqualFold(cloud, CloudPrivate):
		cloud = CloudPrivate
		var suffixField string
		if suffix, suffixField, err = p.Value(keyEndpointSuffix, false); err != nil {
			return err
		}
		if suffix == "" {
			return sources.ConfigErrorf(sources.MetadataField(keyEndpointSuffix), "is required with cloud Private")
		}
		if !suffixPattern.MatchString(suffix) {
			return sources.ConfigErrorf(suffixField,
				"%s is not a DNS suffix (e.g. servicebus.example.net)", sources.QuoteValue(keyEndpointSuffix, suffixField, suffix))
		}
	default:
		known := false
		for name, s := range cloudSuffixes {
			if strings.EqualFold(cloud, name) {
				cloud, suffix, known = name, s, true
			}
		}
		if !known {
			return sources.ConfigErrorf(cloudField,
				"%s is not a known cloud (use AzurePublicCloud, AzureUSGovernmentCloud, AzureChinaCloud or Private with endpointSuffix)",
				sources.QuoteValue(keyCloud, cloudField, cloud))
		}
	}
	m.Auth, m.Cloud, m.Namespace = AuthWorkloadIdentity, cloud, ns+"."+suffix
	return nil
}

// connectionNamespace checks a Service Bus connection string and returns its namespace host, or a detail saying what
// is wrong. The detail never quotes the connection string or any of its values.
func connectionNamespace(conn string) (host, detail string) {
	var endpoint string
	var hasKeyName, hasKey, hasSignature bool
	for part := range strings.SplitSeq(conn, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, value, ok := strings.Cut(part, "=")
		if !ok {
			return "", "a part has no key=value form"
		}
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "endpoint":
			endpoint = value
		case "sharedaccesskeyname":
			hasKeyName = value != ""
		case "sharedaccesskey":
			hasKey = value != ""
		case "sharedaccesssignature":
			hasSignature = value != ""
		}
	}
	if endpoint == "" {
		return "", "it has no Endpoint"
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return "", "its Endpoint is not a URL with a host (want sb://<namespace>.servicebus.windows.net/)"
	}
	if !hasSignature && (!hasKeyName || !hasKey) {
		return "", "it needs SharedAccessKeyName and SharedAccessKey, or SharedAccessSignature"
	}
	return u.Host, ""
}
