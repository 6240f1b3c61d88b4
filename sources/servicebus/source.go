package servicebus

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus/admin"

	"github.com/kubedispatch/kubedispatch/sources"
)

// Type is the trigger type this package implements.
const Type = "azure-servicebus"

// listPageSize is how many entities one page of a regular-expression listing asks for.
const listPageSize = 100

// Register adds the azure-servicebus factory, its message-mode receiver factory and its endpoints function to r.
func Register(r *sources.Registry) error {
	if err := r.Register(Type, New); err != nil {
		return err
	}
	if err := r.RegisterEndpoints(Type, Endpoints); err != nil {
		return err
	}
	return r.RegisterReceiver(Type, NewReceiver)
}

// adminAPI is the part of *admin.Client the source uses.
type adminAPI interface {
	GetQueueRuntimeProperties(ctx context.Context, queueName string, options *admin.GetQueueRuntimePropertiesOptions) (*admin.GetQueueRuntimePropertiesResponse, error)
	GetSubscriptionRuntimeProperties(ctx context.Context, topicName, subscriptionName string, options *admin.GetSubscriptionRuntimePropertiesOptions) (*admin.GetSubscriptionRuntimePropertiesResponse, error)
	NewListQueuesRuntimePropertiesPager(options *admin.ListQueuesRuntimePropertiesOptions) *runtime.Pager[admin.ListQueuesRuntimePropertiesResponse]
	NewListSubscriptionsRuntimePropertiesPager(topicName string, options *admin.ListSubscriptionsRuntimePropertiesOptions) *runtime.Pager[admin.ListSubscriptionsRuntimePropertiesResponse]
}

var _ adminAPI = (*admin.Client)(nil)

// Source reads a Service Bus backlog. It is safe for concurrent use.
type Source struct {
	meta    Metadata
	api     adminAPI
	pattern *regexp.Regexp // nil unless UseRegex
}

var _ sources.Source = (*Source)(nil)

// New is the azure-servicebus sources.Factory. It validates cfg and builds an administration client from the
// connection string, or from a workload identity credential and the namespace. It makes no network call.
func New(_ context.Context, cfg sources.Config) (sources.Source, error) {
	return newWithOptions(cfg, nil)
}

// NewWithAdmin validates cfg and returns a Source that reads through client. Authentication parameters are validated
// but not used: client carries its own credentials and endpoint.
func NewWithAdmin(cfg sources.Config, client *admin.Client) (*Source, error) {
	m, _, err := parse(cfg)
	if err != nil {
		return nil, err
	}
	return newSource(m, client), nil
}

// newWithOptions is New with administration client options (tests pass a transport that trusts their TLS server).
func newWithOptions(cfg sources.Config, opts *admin.ClientOptions) (*Source, error) {
	m, conn, err := parse(cfg)
	if err != nil {
		return nil, err
	}
	var client *admin.Client
	switch m.Auth {
	case AuthConnectionString:
		client, err = admin.NewClientFromConnectionString(conn, opts)
		if err != nil {
			// The SDK's message may quote parts of the connection string: leave it out.
			return nil, sources.ConfigErrorf(connectionField(cfg), "is not a valid Service Bus connection string")
		}
	case AuthWorkloadIdentity:
		cred, cerr := workloadCredential(m.Cloud)
		if cerr != nil {
			return nil, fmt.Errorf("creating the Azure workload identity credential for Service Bus namespace %s: %w", m.Namespace, cerr)
		}
		client, err = admin.NewClient(m.Namespace, cred, opts)
		if err != nil {
			return nil, fmt.Errorf("creating the Service Bus administration client for %s: %w", m.Namespace, err)
		}
	}
	return newSource(m, client), nil
}

func newSource(m Metadata, api adminAPI) *Source {
	s := &Source{meta: m, api: api}
	if m.UseRegex {
		name := m.QueueName
		if m.Entity == EntitySubscription {
			name = m.SubscriptionName
		}
		// Parse compiled it already.
		s.pattern = regexp.MustCompile("^(?:" + name + ")$")
	}
	return s
}

// connectionField names the field the connection string came from, as sources.Params.Lookup does.
func connectionField(cfg sources.Config) string {
	_, field, _, _ := cfg.Params().Lookup(keyConnection)
	return field
}

// workloadCredential returns the workload identity credential (the federated token the webhook injects), falling
// back to the managed identity when the workload identity environment is missing.
func workloadCredential(cloudName string) (azcore.TokenCredential, error) {
	cc := cloudConfiguration(cloudName)
	var chain []azcore.TokenCredential
	if wi, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
		ClientOptions: azcore.ClientOptions{Cloud: cc},
	}); err == nil {
		chain = append(chain, wi)
	}
	mi, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: azcore.ClientOptions{Cloud: cc},
	})
	if err != nil {
		return nil, err
	}
	chain = append(chain, mi)
	return azidentity.NewChainedTokenCredential(chain, nil)
}

// cloudConfiguration is the Azure AD authority of a cloud; a Private cloud uses the public one unless
// AZURE_AUTHORITY_HOST says otherwise.
func cloudConfiguration(name string) cloud.Configuration {
	switch name {
	case CloudUSGovernment:
		return cloud.AzureGovernment
	case CloudChina:
		return cloud.AzureChina
	default:
		return cloud.AzurePublic
	}
}

// Metadata returns the parsed trigger metadata.
func (s *Source) Metadata() Metadata {
	return s.meta
}

// Backlog reads the active message count of the queue or subscription, or combines those of every queue (or every
// subscription of the topic) whose whole name matches the regular expression. A missing queue or subscription yields
// an error wrapping sources.ErrNotFound; a regular expression that matches nothing yields 0.
func (s *Source) Backlog(ctx context.Context, now time.Time) (sources.Backlog, error) {
	var q int64
	var err error
	switch {
	case s.pattern != nil && s.meta.Entity == EntityQueue:
		q, err = s.queuesMatching(ctx)
	case s.pattern != nil:
		q, err = s.subscriptionsMatching(ctx)
	case s.meta.Entity == EntityQueue:
		q, err = s.queue(ctx)
	default:
		q, err = s.subscription(ctx)
	}
	if err != nil {
		return sources.Backlog{}, err
	}
	return sources.Backlog{
		Value:     float64(q),
		Target:    float64(s.meta.MessageCount),
		Active:    q > s.meta.ActivationMessageCount,
		SampledAt: now,
	}, nil
}

// Close releases nothing (the administration client holds no connection that needs closing); it is safe to call
// more than once.
func (s *Source) Close() error {
	return nil
}

func (s *Source) queue(ctx context.Context) (int64, error) {
	resp, err := s.api.GetQueueRuntimeProperties(ctx, s.meta.QueueName, nil)
	if err != nil {
		return 0, fmt.Errorf("reading runtime properties of Service Bus queue %s in %s: %w", s.meta.QueueName, s.meta.Namespace, concise(err))
	}
	if resp == nil {
		return 0, fmt.Errorf("reading runtime properties of Service Bus queue %s in %s: queue %w", s.meta.QueueName, s.meta.Namespace, sources.ErrNotFound)
	}
	return int64(resp.ActiveMessageCount), nil
}

func (s *Source) subscription(ctx context.Context) (int64, error) {
	resp, err := s.api.GetSubscriptionRuntimeProperties(ctx, s.meta.TopicName, s.meta.SubscriptionName, nil)
	if err != nil {
		return 0, fmt.Errorf("reading runtime properties of Service Bus subscription %s in %s: %w", s.meta.EntityName(), s.meta.Namespace, concise(err))
	}
	if resp == nil {
		return 0, fmt.Errorf("reading runtime properties of Service Bus subscription %s in %s: subscription %w", s.meta.EntityName(), s.meta.Namespace, sources.ErrNotFound)
	}
	return int64(resp.ActiveMessageCount), nil
}

func (s *Source) queuesMatching(ctx context.Context) (int64, error) {
	var counts []int64
	pager := s.api.NewListQueuesRuntimePropertiesPager(&admin.ListQueuesRuntimePropertiesOptions{MaxPageSize: listPageSize})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("listing Service Bus queues in %s: %w", s.meta.Namespace, concise(err))
		}
		for _, q := range page.QueueRuntimeProperties {
			if s.pattern.MatchString(q.QueueName) {
				counts = append(counts, int64(q.ActiveMessageCount))
			}
		}
	}
	return Combine(counts, s.meta.Operation), nil
}

func (s *Source) subscriptionsMatching(ctx context.Context) (int64, error) {
	var counts []int64
	pager := s.api.NewListSubscriptionsRuntimePropertiesPager(s.meta.TopicName,
		&admin.ListSubscriptionsRuntimePropertiesOptions{MaxPageSize: listPageSize})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if isNotFound(err) {
				return 0, fmt.Errorf("listing subscriptions of Service Bus topic %s in %s: topic %w: %w", s.meta.TopicName, s.meta.Namespace, sources.ErrNotFound, concise(err))
			}
			return 0, fmt.Errorf("listing subscriptions of Service Bus topic %s in %s: %w", s.meta.TopicName, s.meta.Namespace, concise(err))
		}
		for _, sub := range page.SubscriptionRuntimeProperties {
			if s.pattern.MatchString(sub.SubscriptionName) {
				counts = append(counts, int64(sub.ActiveMessageCount))
			}
		}
	}
	return Combine(counts, s.meta.Operation), nil
}

// httpError renders an administration API error on one line, "GET <url>: HTTP <status>: <detail>", instead of
// azcore's multi-line block, and keeps the *azcore.ResponseError for errors.As. Other errors pass through.
type httpError struct {
	re *azcore.ResponseError
}

func (e httpError) Error() string {
	msg := fmt.Sprintf("HTTP %d", e.re.StatusCode)
	if raw := e.re.RawResponse; raw != nil {
		if raw.Request != nil && raw.Request.URL != nil {
			u := *raw.Request.URL
			u.RawQuery = "" // only the api-version
			msg = raw.Request.Method + " " + u.String() + ": " + msg
		}
		if body, err := runtime.Payload(raw); err == nil {
			var mgmt struct {
				Detail string `xml:"Detail"`
			}
			if xml.Unmarshal(body, &mgmt) == nil && mgmt.Detail != "" {
				msg += ": " + mgmt.Detail
			}
		}
	}
	return msg
}

func (e httpError) Unwrap() error {
	return e.re
}

// concise wraps an *azcore.ResponseError in httpError.
func concise(err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return httpError{re: re}
	}
	return err
}

// isNotFound reports whether err is an HTTP 404 from the administration API.
func isNotFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

// Combine folds the active message counts of the matched entities with operation: their sum, their maximum, or their
// average by integer division (KEDA's). No counts yield 0.
func Combine(counts []int64, operation string) int64 {
	if len(counts) == 0 {
		return 0
	}
	var total, largest int64
	for i, c := range counts {
		total += c
		if i == 0 || c > largest {
			largest = c
		}
	}
	switch operation {
	case OperationMax:
		return largest
	case OperationAvg:
		return total / int64(len(counts))
	default:
		return total
	}
}
