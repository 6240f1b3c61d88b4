package sqs

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/kubedispatch/kubedispatch/sources"
)

// Type is the trigger type this package implements.
const Type = "aws-sqs-queue"

// Register adds the aws-sqs-queue factory, its message-mode receiver factory and its endpoints function to r. The
// sources and receivers it builds share one AWS configuration per region: one HTTP client (one connection pool, and
// a custom CA bundle such as AWS_CA_BUNDLE parsed once instead of once per trigger). An awsEndpoint equal to the
// endpoint the process's environment configures (AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL) is the operator's choice
// and counts as a default endpoint.
func Register(r *sources.Registry) error {
	c := newClients()
	if err := r.Register(Type, c.newSource); err != nil {
		return err
	}
	if err := r.RegisterEndpoints(Type, endpointsFunc(operatorEndpoints(os.Getenv))); err != nil {
		return err
	}
	return r.RegisterReceiver(Type, c.newReceiver)
}

// clients builds SQS clients from a default AWS configuration loaded once per region.
type clients struct {
	mu   sync.Mutex
	base map[string]aws.Config
}

func newClients() *clients { return &clients{base: map[string]aws.Config{}} }

// config returns a copy of the region's default configuration, loading it on first use.
func (c *clients) config(ctx context.Context, region string) (aws.Config, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cfg, ok := c.base[region]; ok {
		return cfg.Copy(), nil
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region))
	if err != nil {
		return aws.Config{}, err
	}
	c.base[region] = cfg
	return cfg.Copy(), nil
}

// API is the single SQS call the source makes. *sqs.Client implements it; tests pass a fake.
type API interface {
	GetQueueAttributes(ctx context.Context, in *awssqs.GetQueueAttributesInput, optFns ...func(*awssqs.Options)) (*awssqs.GetQueueAttributesOutput, error)
}

// Source reads an SQS queue's backlog. It is safe for concurrent use.
type Source struct {
	meta  Metadata
	api   API
	attrs []types.QueueAttributeName
}

var _ sources.Source = (*Source)(nil)

// New is the aws-sqs-queue sources.Factory. It validates cfg and builds an SQS client from the default AWS
// configuration (which honours AWS_ENDPOINT_URL_SQS and the environment's credentials), the trigger's region, its
// optional endpoint and its static credentials if any. It makes no network call.
func New(ctx context.Context, cfg sources.Config) (sources.Source, error) {
	return newClients().newSource(ctx, cfg)
}

func (c *clients) newSource(ctx context.Context, cfg sources.Config) (sources.Source, error) {
	m, creds, err := parse(cfg)
	if err != nil {
		return nil, err
	}
	client, err := c.newClient(ctx, cfg, m, creds)
	if err != nil {
		return nil, err
	}
	return newSource(m, client), nil
}

// newClient builds the SQS client of a parsed trigger (New and NewReceiver): the default AWS configuration with the
// trigger's region, its static credentials (creds, nil for the default chain), its assumed role and its endpoint. It
// makes no network call.
func (c *clients) newClient(ctx context.Context, cfg sources.Config, m Metadata, creds aws.CredentialsProvider) (*awssqs.Client, error) {
	awsCfg, err := c.config(ctx, m.Region)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration for SQS queue %s: %w", m.QueueName, err)
	}
	if creds != nil {
		awsCfg.Credentials = aws.NewCredentialsCache(creds)
	}
	// podIdentity aws with roleArn (TriggerAuthentication spec.podIdentity.roleArn, passed as awsRoleArn): assume that
	// role with the dispatcher's own identity, as KEDA does.
	if role := cfg.Params().Auth(authRoleArn); role != "" {
		awsCfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(awsCfg), role))
	}
	return awssqs.NewFromConfig(awsCfg, func(o *awssqs.Options) {
		if m.Endpoint != "" {
			o.BaseEndpoint = aws.String(m.Endpoint)
		}
	}), nil
}

// NewWithAPI validates cfg and returns a Source that reads through api. Authentication parameters are validated but
// not used: api carries its own credentials.
func NewWithAPI(cfg sources.Config, api API) (*Source, error) {
	m, _, err := parse(cfg)
	if err != nil {
		return nil, err
	}
	return newSource(m, api), nil
}

func newSource(m Metadata, api API) *Source {
	attrs := []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages}
	if m.ScaleOnInFlight {
		attrs = append(attrs, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)
	}
	if m.ScaleOnDelayed {
		attrs = append(attrs, types.QueueAttributeNameApproximateNumberOfMessagesDelayed)
	}
	return &Source{meta: m, api: api, attrs: attrs}
}

// Metadata returns the parsed trigger metadata.
func (s *Source) Metadata() Metadata {
	return s.meta
}

// Backlog sums the queue's visible messages, plus in-flight ones if ScaleOnInFlight and delayed ones if
// ScaleOnDelayed. A missing queue yields an error wrapping sources.ErrNotFound; a missing or non-integer attribute in
// the response is a (transient) error.
func (s *Source) Backlog(ctx context.Context, now time.Time) (sources.Backlog, error) {
	out, err := s.api.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(s.meta.QueueURL),
		AttributeNames: s.attrs,
	})
	if err != nil {
		if queueDoesNotExist(err) {
			return sources.Backlog{}, fmt.Errorf("reading attributes of SQS queue %s: queue %w: %w", s.meta.QueueURL, sources.ErrNotFound, err)
		}
		if credentialsRefused(err) {
			return sources.Backlog{}, fmt.Errorf("reading attributes of SQS queue %s: %w: %w", s.meta.QueueURL, sources.ErrUnauthorized, err)
		}
		return sources.Backlog{}, fmt.Errorf("reading attributes of SQS queue %s: %w", s.meta.QueueURL, err)
	}
	var attributes map[string]string
	if out != nil {
		attributes = out.Attributes
	}
	var q int64
	for _, name := range s.attrs {
		raw, ok := attributes[string(name)]
		if !ok {
			return sources.Backlog{}, fmt.Errorf("reading attributes of SQS queue %s: response has no %s", s.meta.QueueURL, name)
		}
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return sources.Backlog{}, fmt.Errorf("reading attributes of SQS queue %s: %s is %q, not an integer", s.meta.QueueURL, name, raw)
		}
		q += n
	}
	return sources.Backlog{
		Value:     float64(q),
		Target:    float64(s.meta.QueueLength),
		Active:    q > s.meta.ActivationQueueLength,
		SampledAt: now,
	}, nil
}

// Endpoint is the host the source talks to: awsEndpoint's when set, else the queue URL's.
func (s *Source) Endpoint() string {
	raw := s.meta.QueueURL
	if s.meta.Endpoint != "" {
		raw = s.meta.Endpoint
	}
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return "sqs:" + u.Host
	}
	return "sqs:" + raw
}

// Close releases nothing (the SDK client holds no resources that need closing); it is safe to call more than once.
func (s *Source) Close() error {
	return nil
}

// queueDoesNotExist reports whether err says the queue does not exist, as a typed error or by its AWS error code.
func queueDoesNotExist(err error) bool {
	var qne *types.QueueDoesNotExist
	if errors.As(err, &qne) {
		return true
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue":
			return true
		}
	}
	return false
}

// credentialsRefused reports whether err says AWS refused the credentials (unknown, wrong or expired keys).
func credentialsRefused(err error) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode() {
	case "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch", "InvalidAccessKeyId",
		"ExpiredToken", "ExpiredTokenException", "AccessDenied", "AccessDeniedException", "InvalidSecurity":
		return true
	}
	return false
}
