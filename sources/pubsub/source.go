package pubsub

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	monitoring "cloud.google.com/go/monitoring/apiv3/v2"
	"cloud.google.com/go/monitoring/apiv3/v2/monitoringpb"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kubedispatch/kubedispatch/sources"
)

// Type is the trigger type this package implements.
const Type = "gcp-pubsub"

// Register adds the gcp-pubsub factory, its message-mode receiver factory and its endpoints function to r.
func Register(r *sources.Registry) error {
	if err := r.Register(Type, New); err != nil {
		return err
	}
	if err := r.RegisterEndpoints(Type, Endpoints); err != nil {
		return err
	}
	return r.RegisterReceiver(Type, NewReceiver)
}

// API is the single Cloud Monitoring read the source makes. The client that New builds implements it over the
// monitoring SDK's MetricClient.ListTimeSeries; tests may pass a fake.
type API interface {
	// FirstTimeSeries returns the first time series that ListTimeSeries yields for req, or nil when there is none.
	FirstTimeSeries(ctx context.Context, req *monitoringpb.ListTimeSeriesRequest) (*monitoringpb.TimeSeries, error)
}

// Source reads a Pub/Sub metric from Cloud Monitoring. It is safe for concurrent use.
type Source struct {
	meta  Metadata
	api   API
	close func() error
}

var _ sources.Source = (*Source)(nil)

// New is the gcp-pubsub sources.Factory. It validates cfg and prepares a Cloud Monitoring client that is created on
// the first Backlog call (so that credential discovery, which may reach the metadata server, happens there). It makes
// no network call.
func New(_ context.Context, cfg sources.Config) (sources.Source, error) {
	m, key, err := parse(cfg, os.Getenv(envGoogleCloudProject))
	if err != nil {
		return nil, err
	}
	c := &metricClient{opts: clientOptions(m, key)}
	return &Source{meta: m, api: c, close: c.Close}, nil
}

// NewWithAPI validates cfg and returns a Source that reads through api. Authentication parameters are validated but
// not used: api carries its own credentials.
func NewWithAPI(cfg sources.Config, api API) (*Source, error) {
	m, _, err := parse(cfg, os.Getenv(envGoogleCloudProject))
	if err != nil {
		return nil, err
	}
	return &Source{meta: m, api: api, close: func() error { return nil }}, nil
}

// clientOptions returns the monitoring client's options for m and its service account key (nil for application
// default credentials or none).
func clientOptions(m Metadata, key []byte) []option.ClientOption {
	var opts []option.ClientOption
	if m.MonitoringEndpoint != "" {
		opts = append(opts, option.WithEndpoint(m.MonitoringEndpoint))
	}
	switch m.Auth {
	case AuthNone:
		opts = append(opts, option.WithoutAuthentication())
	case AuthServiceAccountKey:
		opts = append(opts, option.WithAuthCredentialsJSON(option.ServiceAccount, key))
	case AuthPodIdentity:
		// Application default credentials.
	}
	if m.MonitoringInsecure {
		opts = append(opts, option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	}
	return opts
}

// Metadata returns the parsed trigger metadata.
func (s *Source) Metadata() Metadata {
	return s.meta
}

// Backlog reads the newest point of the trigger's metric within TimeHorizon before now. Value is that point (squared
// for aggregation variance), SampledAt its end time, Target the trigger's value, and Active whether Value exceeds
// activationValue. With no time series, Value is valueIfNull (SampledAt now) when set, and otherwise the result is
// an error. A NotFound answer (e.g. a missing project) wraps sources.ErrNotFound; other errors are transient.
func (s *Source) Backlog(ctx context.Context, now time.Time) (sources.Backlog, error) {
	ts, err := s.api.FirstTimeSeries(ctx, s.meta.Request(now))
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return sources.Backlog{}, fmt.Errorf("reading %s of Pub/Sub %s %s: %w: %w", s.meta.MetricType, s.meta.Resource,
				s.meta.ResourceName(), sources.ErrNotFound, err)
		}
		return sources.Backlog{}, fmt.Errorf("reading %s of Pub/Sub %s %s: %w", s.meta.MetricType, s.meta.Resource,
			s.meta.ResourceName(), err)
	}
	v, sampledAt, err := s.meta.newestPoint(ts)
	switch {
	case errors.Is(err, errNoPoints) && s.meta.ValueIfNull != nil:
		v, sampledAt = *s.meta.ValueIfNull, now
	case errors.Is(err, errNoPoints):
		return sources.Backlog{}, fmt.Errorf("reading %s of Pub/Sub %s %s: no time series for %s in the last %s: is the %s new or idle? set valueIfNull",
			s.meta.MetricType, s.meta.Resource, s.meta.ResourceName(), s.meta.MetricType, s.meta.TimeHorizon, s.meta.Resource)
	case err != nil:
		return sources.Backlog{}, fmt.Errorf("reading %s of Pub/Sub %s %s: %w", s.meta.MetricType, s.meta.Resource,
			s.meta.ResourceName(), err)
	}
	if sampledAt.IsZero() {
		sampledAt = now
	}
	return sources.Backlog{
		Value:     v,
		Target:    s.meta.Value,
		Active:    v > s.meta.ActivationValue,
		SampledAt: sampledAt,
	}, nil
}

// Close closes the Cloud Monitoring client if one was created; it is safe to call more than once.
func (s *Source) Close() error {
	return s.close()
}

// errClosed is returned by reads after Close.
var errClosed = errors.New("source is closed")

// metricClient is the API over the monitoring SDK. The SDK client is created on first use.
type metricClient struct {
	opts []option.ClientOption

	mu     sync.Mutex
	client *monitoring.MetricClient
	closed bool
}

func (c *metricClient) get(ctx context.Context) (*monitoring.MetricClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	if c.client == nil {
		// The client outlives this call: do not let the caller's cancellation reach it.
		client, err := monitoring.NewMetricClient(context.WithoutCancel(ctx), c.opts...)
		if err != nil {
			return nil, fmt.Errorf("creating Cloud Monitoring client: %w", err)
		}
		c.client = client
	}
	return c.client, nil
}

// FirstTimeSeries implements API.
func (c *metricClient) FirstTimeSeries(ctx context.Context, req *monitoringpb.ListTimeSeriesRequest) (*monitoringpb.TimeSeries, error) {
	client, err := c.get(ctx)
	if err != nil {
		return nil, err
	}
	ts, err := client.ListTimeSeries(ctx, req).Next()
	if errors.Is(err, iterator.Done) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ts, nil
}

// Close closes the SDK client, if any; later reads fail.
func (c *metricClient) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.client == nil {
		return nil
	}
	if err := c.client.Close(); err != nil {
		return fmt.Errorf("closing Cloud Monitoring client: %w", err)
	}
	return nil
}
