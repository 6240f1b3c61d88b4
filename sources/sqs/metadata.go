package sqs

import (
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/kubedispatch/kubedispatch/sources"
)

// Metadata keys and TriggerAuthentication parameters of the aws-sqs-queue trigger.
const (
	keyQueueURL              = "queueURL"
	keyQueueLength           = "queueLength"
	keyActivationQueueLength = "activationQueueLength"
	keyAWSRegion             = "awsRegion"
	keyAWSEndpoint           = "awsEndpoint"
	keyScaleOnInFlight       = "scaleOnInFlight"
	keyScaleOnDelayed        = "scaleOnDelayed"
	keyIdentityOwner         = "identityOwner"

	authAccessKeyID     = "awsAccessKeyID"
	authSecretAccessKey = "awsSecretAccessKey"
	authSessionToken    = "awsSessionToken"
	authRoleArn         = "awsRoleArn"
)

// Defaults of the aws-sqs-queue trigger (KEDA's).
const (
	DefaultQueueLength     int64 = 5
	DefaultScaleOnInFlight       = true
	DefaultScaleOnDelayed        = false
)

// Metadata is a parsed aws-sqs-queue trigger. It holds no secrets.
type Metadata struct {
	// QueueURL is the queue as configured: a full queue URL or a bare queue name. It is sent as-is as QueueUrl.
	QueueURL string
	// QueueName is the queue's name: the last path segment of QueueURL, or QueueURL itself when it is not a URL.
	QueueName string
	// QueueLength is the per-Job target T.
	QueueLength int64
	// ActivationQueueLength is the backlog the queue must exceed to be active.
	ActivationQueueLength int64
	// Region is the AWS region.
	Region string
	// Endpoint is an optional base endpoint replacing the SQS default (e.g. a local emulator).
	Endpoint string
	// ScaleOnInFlight adds ApproximateNumberOfMessagesNotVisible (received, not yet deleted) to the backlog.
	ScaleOnInFlight bool
	// ScaleOnDelayed adds ApproximateNumberOfMessagesDelayed to the backlog.
	ScaleOnDelayed bool
}

// Parse validates an aws-sqs-queue trigger configuration, including its authentication, and returns its metadata.
// Every error is a *sources.ConfigError.
func Parse(cfg sources.Config) (Metadata, error) {
	m, _, err := parse(cfg)
	return m, err
}

// parse returns the metadata and the credentials provider: nil means the default credentials chain.
func parse(cfg sources.Config) (Metadata, aws.CredentialsProvider, error) {
	p := cfg.Params()
	var m Metadata
	var err error

	if p.Has(keyIdentityOwner) {
		return Metadata{}, nil, sources.ConfigErrorf(sources.MetadataField(keyIdentityOwner),
			"is deprecated and not supported; use a TriggerAuthentication with podIdentity provider aws, or access keys")
	}
	var field string
	if m.QueueURL, field, err = p.Value(keyQueueURL, true); err != nil {
		return Metadata{}, nil, err
	}
	if m.QueueName, err = queueName(m.QueueURL, field); err != nil {
		return Metadata{}, nil, err
	}
	if m.QueueLength, err = p.Int64(keyQueueLength, DefaultQueueLength); err != nil {
		return Metadata{}, nil, err
	}
	if m.QueueLength < 1 {
		_, field, _, _ := p.Lookup(keyQueueLength)
		return Metadata{}, nil, sources.ConfigErrorf(field,
			"must be at least 1, got %s", sources.QuoteNumber(keyQueueLength, field, m.QueueLength))
	}
	if m.ActivationQueueLength, err = p.Int64(keyActivationQueueLength, 0); err != nil {
		return Metadata{}, nil, err
	}
	if m.Region, err = p.String(keyAWSRegion, true); err != nil {
		return Metadata{}, nil, err
	}
	if m.Endpoint, field, err = p.Value(keyAWSEndpoint, false); err != nil {
		return Metadata{}, nil, err
	}
	if m.Endpoint != "" {
		if u, perr := url.Parse(m.Endpoint); perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Metadata{}, nil, sources.ConfigErrorf(field,
				"%s is not an http(s) URL with a host", sources.QuoteValue(keyAWSEndpoint, field, m.Endpoint))
		}
	}
	if m.ScaleOnInFlight, err = p.Bool(keyScaleOnInFlight, DefaultScaleOnInFlight); err != nil {
		return Metadata{}, nil, err
	}
	if m.ScaleOnDelayed, err = p.Bool(keyScaleOnDelayed, DefaultScaleOnDelayed); err != nil {
		return Metadata{}, nil, err
	}
	creds, err := credentialsFor(cfg)
	if err != nil {
		return Metadata{}, nil, err
	}
	return m, creds, nil
}

// queueName extracts the queue name. A string that is not an absolute URL (or absolute path) is the name itself; a
// URL must have the path /<account>/<queue>.
func queueName(queueURL, field string) (string, error) {
	u, err := url.ParseRequestURI(queueURL)
	if err != nil {
		return queueURL, nil
	}
	parts := strings.Split(u.Path, "/")
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return "", sources.ConfigErrorf(field,
			"%s has no queue in its path (want https://<host>/<account>/<queue>)", sources.QuoteValue(keyQueueURL, field, queueURL))
	}
	return parts[2], nil
}

// credentialsFor picks the credentials: static access keys from the TriggerAuthentication when given, otherwise
// (pod identity aws, or none) nil for the default credentials chain.
func credentialsFor(cfg sources.Config) (aws.CredentialsProvider, error) {
	p := cfg.Params()
	id, secret, token := p.Auth(authAccessKeyID), p.Auth(authSecretAccessKey), p.Auth(authSessionToken)
	switch {
	case p.Auth(authRoleArn) != "" && id != "":
		return nil, sources.ConfigErrorf(sources.AuthField,
			"parameter %s and access keys are both set: use one (the role is assumed with the dispatcher's own identity)", authRoleArn)
	case id != "" && secret == "":
		return nil, sources.ConfigErrorf(sources.AuthField,
			"parameter %s is missing (%s is set)", authSecretAccessKey, authAccessKeyID)
	case id == "" && secret != "":
		return nil, sources.ConfigErrorf(sources.AuthField,
			"parameter %s is missing (%s is set)", authAccessKeyID, authSecretAccessKey)
	case id == "" && token != "":
		return nil, sources.ConfigErrorf(sources.AuthField,
			"parameter %s needs %s and %s", authSessionToken, authAccessKeyID, authSecretAccessKey)
	case id != "":
		return credentials.NewStaticCredentialsProvider(id, secret, token), nil
	}
	switch cfg.PodIdentity {
	case "", "aws", "aws-eks":
		return nil, nil
	default:
		return nil, sources.ConfigErrorf(sources.AuthField,
			"podIdentity provider %q cannot authenticate to SQS (use aws, or access keys)", cfg.PodIdentity)
	}
}
