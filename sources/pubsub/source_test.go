package pubsub

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/monitoring/apiv3/v2/monitoringpb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/api/distribution"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubedispatch/kubedispatch/internal/sourcetest"
	"github.com/kubedispatch/kubedispatch/sources"
)

const (
	testSubscription = "projects/test-project/subscriptions/jobs-sub"
	subFilter        = `metric.type = "pubsub.googleapis.com/subscription/num_undelivered_messages" AND resource.type = "pubsub_subscription" AND resource.labels.project_id = "test-project" AND resource.labels.subscription_id = "jobs-sub"`
)

// fixedNow is the instant every test reads at.
func fixedNow() time.Time { return time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC) }

// fakeMetrics is an in-process Cloud Monitoring MetricService that records ListTimeSeries requests and answers them
// with respond.
type fakeMetrics struct {
	monitoringpb.UnimplementedMetricServiceServer
	respond func(*monitoringpb.ListTimeSeriesRequest) ([]*monitoringpb.TimeSeries, error)

	mu   sync.Mutex
	reqs []*monitoringpb.ListTimeSeriesRequest
}

func (f *fakeMetrics) ListTimeSeries(_ context.Context, req *monitoringpb.ListTimeSeriesRequest) (*monitoringpb.ListTimeSeriesResponse, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	series, err := f.respond(req)
	if err != nil {
		return nil, err
	}
	return &monitoringpb.ListTimeSeriesResponse{TimeSeries: series}, nil
}

func (f *fakeMetrics) requests() []*monitoringpb.ListTimeSeriesRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*monitoringpb.ListTimeSeriesRequest(nil), f.reqs...)
}

// startFakeMonitoring serves a fakeMetrics on a loopback port until the test ends and returns it and its address.
func startFakeMonitoring(t *testing.T, respond func(*monitoringpb.ListTimeSeriesRequest) ([]*monitoringpb.TimeSeries, error)) (*fakeMetrics, string) {
	t.Helper()
	fake := &fakeMetrics{respond: respond}
	return fake, sourcetest.ServeMetricService(t, fake)
}

// fakeTrigger builds a trigger that reads testSubscription through the fake at addr, changed by the options.
func fakeTrigger(addr string, opts ...sourcetest.Option) sources.Config {
	base := []sourcetest.Option{noCredentials, sourcetest.WithMetadata("subscriptionName", testSubscription),
		sourcetest.WithMetadata("monitoringEndpoint", addr), sourcetest.WithMetadata("monitoringInsecure", "true")}
	return trigger(append(base, opts...)...)
}

func intValue(n int64) *monitoringpb.TypedValue {
	return &monitoringpb.TypedValue{Value: &monitoringpb.TypedValue_Int64Value{Int64Value: n}}
}

func doubleValue(f float64) *monitoringpb.TypedValue {
	return &monitoringpb.TypedValue{Value: &monitoringpb.TypedValue_DoubleValue{DoubleValue: f}}
}

func distributionValue(count int64, mean float64) *monitoringpb.TypedValue {
	return &monitoringpb.TypedValue{Value: &monitoringpb.TypedValue_DistributionValue{
		DistributionValue: &distribution.Distribution{Count: count, Mean: mean}}}
}

// point is a sample ending at end.
func point(end time.Time, v *monitoringpb.TypedValue) *monitoringpb.Point {
	return &monitoringpb.Point{
		Interval: &monitoringpb.TimeInterval{StartTime: timestamppb.New(end.Add(-time.Minute)), EndTime: timestamppb.New(end)},
		Value:    v,
	}
}

func series(points ...*monitoringpb.Point) []*monitoringpb.TimeSeries {
	return []*monitoringpb.TimeSeries{{Points: points}}
}

// wantRequest is the ListTimeSeries request expected for filter over horizon before fixedNow.
func wantRequest(project, filter string, horizon time.Duration, agg *monitoringpb.Aggregation) *monitoringpb.ListTimeSeriesRequest {
	return &monitoringpb.ListTimeSeriesRequest{
		Name:   "projects/" + project,
		Filter: filter,
		Interval: &monitoringpb.TimeInterval{
			StartTime: timestamppb.New(fixedNow().Add(-horizon)),
			EndTime:   timestamppb.New(fixedNow()),
		},
		View:        monitoringpb.ListTimeSeriesRequest_FULL,
		PageSize:    1,
		Aggregation: agg,
	}
}

func aggregated(aligner monitoringpb.Aggregation_Aligner, reducer monitoringpb.Aggregation_Reducer) *monitoringpb.Aggregation {
	return &monitoringpb.Aggregation{AlignmentPeriod: durationpb.New(3 * time.Minute), PerSeriesAligner: aligner, CrossSeriesReducer: reducer}
}

// TestBacklogThroughSDK reads through New's real monitoring client and a fake MetricService.
func TestBacklogThroughSDK(t *testing.T) {
	sampled := fixedNow().Add(-90 * time.Second)
	cases := map[string]struct {
		opts    []sourcetest.Option
		series  []*monitoringpb.TimeSeries
		want    sources.Backlog
		wantReq *monitoringpb.ListTimeSeriesRequest
	}{
		"int64 backlog": {
			series:  series(point(sampled, intValue(17))),
			want:    sources.Backlog{Value: 17, Target: 10, Active: true, SampledAt: sampled},
			wantReq: wantRequest("test-project", subFilter, 2*time.Minute, nil),
		},
		"int64 above int32": {
			series:  series(point(sampled, intValue(2147483648))),
			want:    sources.Backlog{Value: 2147483648, Target: 10, Active: true, SampledAt: sampled},
			wantReq: wantRequest("test-project", subFilter, 2*time.Minute, nil),
		},
		"double value and target": {
			opts: []sourcetest.Option{sourcetest.WithMetadata("mode", "OldestUnackedMessageAge"),
				sourcetest.WithMetadata("value", "30.5"),
				sourcetest.WithMetadata("activationValue", "2.5")},
			series: series(point(sampled, doubleValue(2.75))),
			want:   sources.Backlog{Value: 2.75, Target: 30.5, Active: true, SampledAt: sampled},
			wantReq: wantRequest("test-project",
				`metric.type = "pubsub.googleapis.com/subscription/oldest_unacked_message_age" AND resource.type = "pubsub_subscription" AND resource.labels.project_id = "test-project" AND resource.labels.subscription_id = "jobs-sub"`,
				2*time.Minute, nil),
		},
		"newest point wins": {
			series: series(point(sampled.Add(-2*time.Minute), intValue(1)), point(sampled, intValue(9)),
				point(sampled.Add(-time.Minute), intValue(5))),
			want:    sources.Backlog{Value: 9, Target: 10, Active: true, SampledAt: sampled},
			wantReq: wantRequest("test-project", subFilter, 2*time.Minute, nil),
		},
		"at the activation value is inactive": {
			opts: []sourcetest.Option{sourcetest.WithMetadata("activationValue", "5"),
				sourcetest.WithMetadata("value", "1")},
			series:  series(point(sampled, intValue(5))),
			want:    sources.Backlog{Value: 5, Target: 1, Active: false, SampledAt: sampled},
			wantReq: wantRequest("test-project", subFilter, 2*time.Minute, nil),
		},
		"zero backlog is inactive": {
			series:  series(point(sampled, intValue(0))),
			want:    sources.Backlog{Value: 0, Target: 10, Active: false, SampledAt: sampled},
			wantReq: wantRequest("test-project", subFilter, 2*time.Minute, nil),
		},
		"no series with valueIfNull": {
			opts: []sourcetest.Option{sourcetest.WithMetadata("valueIfNull", "0"),
				sourcetest.WithMetadata("timeHorizon", "10m")},
			want:    sources.Backlog{Value: 0, Target: 10, Active: false, SampledAt: fixedNow()},
			wantReq: wantRequest("test-project", subFilter, 10*time.Minute, nil),
		},
		"series without points with valueIfNull": {
			opts:    []sourcetest.Option{sourcetest.WithMetadata("valueIfNull", "3")},
			series:  series(),
			want:    sources.Backlog{Value: 3, Target: 10, Active: true, SampledAt: fixedNow()},
			wantReq: wantRequest("test-project", subFilter, 2*time.Minute, nil),
		},
		"project from projectID": {
			opts: []sourcetest.Option{sourcetest.WithMetadata("subscriptionName", "work"),
				sourcetest.WithMetadata("projectID", "meta-project")},
			series: series(point(sampled, intValue(4))),
			want:   sources.Backlog{Value: 4, Target: 10, Active: true, SampledAt: sampled},
			wantReq: wantRequest("meta-project",
				`metric.type = "pubsub.googleapis.com/subscription/num_undelivered_messages" AND resource.type = "pubsub_subscription" AND resource.labels.project_id = "meta-project" AND resource.labels.subscription_id = "work"`,
				2*time.Minute, nil),
		},
		"topic metric": {
			opts: []sourcetest.Option{sourcetest.WithoutMetadata("subscriptionName"),
				sourcetest.WithMetadata("topicName", "projects/test-project/topics/jobs"),
				sourcetest.WithMetadata("mode", "SendMessageOperationCount"), sourcetest.WithMetadata("value", "100")},
			series: series(point(sampled, intValue(250))),
			want:   sources.Backlog{Value: 250, Target: 100, Active: true, SampledAt: sampled},
			wantReq: wantRequest("test-project",
				`metric.type = "pubsub.googleapis.com/topic/send_message_operation_count" AND resource.type = "pubsub_topic" AND resource.labels.project_id = "test-project" AND resource.labels.topic_id = "jobs"`,
				2*time.Minute, nil),
		},
		"aggregated distribution": {
			opts: []sourcetest.Option{sourcetest.WithMetadata("mode", "AckLatencies"),
				sourcetest.WithMetadata("aggregation", "percentile99")},
			series: series(point(sampled, doubleValue(812.5))),
			want:   sources.Backlog{Value: 812.5, Target: 10, Active: true, SampledAt: sampled},
			wantReq: wantRequest("test-project",
				`metric.type = "pubsub.googleapis.com/subscription/ack_latencies" AND resource.type = "pubsub_subscription" AND resource.labels.project_id = "test-project" AND resource.labels.subscription_id = "jobs-sub"`,
				5*time.Minute, aggregated(monitoringpb.Aggregation_ALIGN_PERCENTILE_99, monitoringpb.Aggregation_REDUCE_PERCENTILE_99)),
		},
		"variance squares the stddev": {
			opts: []sourcetest.Option{sourcetest.WithMetadata("aggregation", "variance"),
				sourcetest.WithMetadata("timeHorizon", "15m")},
			series:  series(point(sampled, doubleValue(3))),
			want:    sources.Backlog{Value: 9, Target: 10, Active: true, SampledAt: sampled},
			wantReq: wantRequest("test-project", subFilter, 15*time.Minute, aggregated(monitoringpb.Aggregation_ALIGN_STDDEV, monitoringpb.Aggregation_REDUCE_STDDEV)),
		},
		"sum of a distribution": {
			opts:    []sourcetest.Option{sourcetest.WithMetadata("aggregation", "sum")},
			series:  series(point(sampled, distributionValue(4, 2.5))),
			want:    sources.Backlog{Value: 10, Target: 10, Active: true, SampledAt: sampled},
			wantReq: wantRequest("test-project", subFilter, 5*time.Minute, aggregated(monitoringpb.Aggregation_ALIGN_SUM, monitoringpb.Aggregation_REDUCE_SUM)),
		},
		"count of a distribution": {
			opts:    []sourcetest.Option{sourcetest.WithMetadata("aggregation", "count")},
			series:  series(point(sampled, distributionValue(4, 2.5))),
			want:    sources.Backlog{Value: 4, Target: 10, Active: true, SampledAt: sampled},
			wantReq: wantRequest("test-project", subFilter, 5*time.Minute, aggregated(monitoringpb.Aggregation_ALIGN_COUNT, monitoringpb.Aggregation_REDUCE_SUM)),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			fake, addr := startFakeMonitoring(t, func(*monitoringpb.ListTimeSeriesRequest) ([]*monitoringpb.TimeSeries, error) {
				return tc.series, nil
			})
			src, err := New(t.Context(), fakeTrigger(addr, tc.opts...))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			t.Cleanup(func() { _ = src.Close() })
			got, err := src.Backlog(t.Context(), fixedNow())
			if err != nil {
				t.Fatalf("Backlog: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Backlog mismatch (-want +got):\n%s", diff)
			}
			reqs := fake.requests()
			if len(reqs) != 1 {
				t.Fatalf("ListTimeSeries called %d times, want 1", len(reqs))
			}
			if diff := cmp.Diff(tc.wantReq, reqs[0], protocmp.Transform()); diff != "" {
				t.Errorf("ListTimeSeries request mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAggregationMapping(t *testing.T) {
	cases := map[string]*monitoringpb.Aggregation{
		"mean":         aggregated(monitoringpb.Aggregation_ALIGN_MEAN, monitoringpb.Aggregation_REDUCE_MEAN),
		"median":       aggregated(monitoringpb.Aggregation_ALIGN_PERCENTILE_50, monitoringpb.Aggregation_REDUCE_PERCENTILE_50),
		"variance":     aggregated(monitoringpb.Aggregation_ALIGN_STDDEV, monitoringpb.Aggregation_REDUCE_STDDEV),
		"stddev":       aggregated(monitoringpb.Aggregation_ALIGN_STDDEV, monitoringpb.Aggregation_REDUCE_STDDEV),
		"sum":          aggregated(monitoringpb.Aggregation_ALIGN_SUM, monitoringpb.Aggregation_REDUCE_SUM),
		"count":        aggregated(monitoringpb.Aggregation_ALIGN_COUNT, monitoringpb.Aggregation_REDUCE_SUM),
		"percentile99": aggregated(monitoringpb.Aggregation_ALIGN_PERCENTILE_99, monitoringpb.Aggregation_REDUCE_PERCENTILE_99),
		"percentile95": aggregated(monitoringpb.Aggregation_ALIGN_PERCENTILE_95, monitoringpb.Aggregation_REDUCE_PERCENTILE_95),
		"percentile50": aggregated(monitoringpb.Aggregation_ALIGN_PERCENTILE_50, monitoringpb.Aggregation_REDUCE_PERCENTILE_50),
		"percentile5":  aggregated(monitoringpb.Aggregation_ALIGN_PERCENTILE_05, monitoringpb.Aggregation_REDUCE_PERCENTILE_05),
		"percentile05": aggregated(monitoringpb.Aggregation_ALIGN_PERCENTILE_05, monitoringpb.Aggregation_REDUCE_PERCENTILE_05),
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := Parse(trigger(sourcetest.WithMetadata("aggregation", name)))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(want, m.Request(fixedNow()).GetAggregation(), protocmp.Transform()); diff != "" {
				t.Errorf("aggregation mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBacklogErrorsThroughSDK(t *testing.T) {
	sampled := fixedNow().Add(-time.Minute)
	cases := map[string]struct {
		opts         []sourcetest.Option
		series       []*monitoringpb.TimeSeries
		err          error
		wantMsg      string
		wantNotFound bool
	}{
		"no series without valueIfNull": {
			wantMsg: "reading pubsub.googleapis.com/subscription/num_undelivered_messages of Pub/Sub subscription " + testSubscription +
				": no time series for pubsub.googleapis.com/subscription/num_undelivered_messages in the last 2m0s: is the subscription new or idle? set valueIfNull",
		},
		"series without points without valueIfNull": {
			series: series(),
			wantMsg: "reading pubsub.googleapis.com/subscription/num_undelivered_messages of Pub/Sub subscription " + testSubscription +
				": no time series for pubsub.googleapis.com/subscription/num_undelivered_messages in the last 2m0s: is the subscription new or idle? set valueIfNull",
		},
		"server error is transient": {
			err: status.Error(codes.Internal, "backend exploded"),
			wantMsg: "reading pubsub.googleapis.com/subscription/num_undelivered_messages of Pub/Sub subscription " + testSubscription +
				": rpc error: code = Internal desc = backend exploded",
		},
		"permission denied is transient": {
			err: status.Error(codes.PermissionDenied, "monitoring.timeSeries.list denied"),
			wantMsg: "reading pubsub.googleapis.com/subscription/num_undelivered_messages of Pub/Sub subscription " + testSubscription +
				": rpc error: code = PermissionDenied desc = monitoring.timeSeries.list denied",
		},
		"missing project is not found": {
			err: status.Error(codes.NotFound, "project not found"),
			wantMsg: "reading pubsub.googleapis.com/subscription/num_undelivered_messages of Pub/Sub subscription " + testSubscription +
				": not found: rpc error: code = NotFound desc = project not found",
			wantNotFound: true,
		},
		"distribution without aggregation": {
			opts:   []sourcetest.Option{sourcetest.WithMetadata("mode", "AckLatencies")},
			series: series(point(sampled, distributionValue(3, 1))),
			wantMsg: "reading pubsub.googleapis.com/subscription/ack_latencies of Pub/Sub subscription " + testSubscription +
				": point is a distribution; set aggregation (e.g. mean or percentile99) to read pubsub.googleapis.com/subscription/ack_latencies",
		},
		"string point": {
			series: series(point(sampled, &monitoringpb.TypedValue{Value: &monitoringpb.TypedValue_StringValue{StringValue: "x"}})),
			wantMsg: "reading pubsub.googleapis.com/subscription/num_undelivered_messages of Pub/Sub subscription " + testSubscription +
				": point has a string value, not a number",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, addr := startFakeMonitoring(t, func(*monitoringpb.ListTimeSeriesRequest) ([]*monitoringpb.TimeSeries, error) {
				return tc.series, tc.err
			})
			src, err := New(t.Context(), fakeTrigger(addr, tc.opts...))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			t.Cleanup(func() { _ = src.Close() })
			got, err := src.Backlog(t.Context(), fixedNow())
			if err == nil {
				t.Fatalf("Backlog = %+v, want an error", got)
			}
			if diff := cmp.Diff(tc.wantMsg, err.Error()); diff != "" {
				t.Errorf("error message mismatch (-want +got):\n%s", diff)
			}
			sourcetest.AssertBacklogError(t, err, tc.wantNotFound)
			if tc.err != nil && status.Code(err) != status.Code(tc.err) {
				t.Errorf("status code of %v = %v, want %v (the gRPC error must stay wrapped)", err, status.Code(err), status.Code(tc.err))
			}
		})
	}
}

// fakeAPI is a hand-written API returning one canned series.
type fakeAPI struct {
	ts  *monitoringpb.TimeSeries
	err error
}

func (f fakeAPI) FirstTimeSeries(context.Context, *monitoringpb.ListTimeSeriesRequest) (*monitoringpb.TimeSeries, error) {
	return f.ts, f.err
}

func TestNewWithAPI(t *testing.T) {
	sampled := fixedNow().Add(-time.Minute)
	src, err := NewWithAPI(trigger(), fakeAPI{ts: series(point(sampled, intValue(12)))[0]})
	if err != nil {
		t.Fatalf("NewWithAPI: %v", err)
	}
	got, err := src.Backlog(t.Context(), fixedNow())
	if err != nil {
		t.Fatalf("Backlog: %v", err)
	}
	if diff := cmp.Diff(sources.Backlog{Value: 12, Target: 10, Active: true, SampledAt: sampled}, got); diff != "" {
		t.Errorf("Backlog mismatch (-want +got):\n%s", diff)
	}
	if got, want := src.Metadata().Project, "key-project"; got != want {
		t.Errorf("Project = %q, want %q", got, want)
	}
	for range 2 {
		if err := src.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if _, err := NewWithAPI(trigger(sourcetest.WithoutMetadata("subscriptionName")),
		fakeAPI{}); !sources.IsConfigError(err) {
		t.Errorf("NewWithAPI with a bad config: error = %v, want a ConfigError", err)
	}
}

func TestCloseThroughSDK(t *testing.T) {
	_, addr := startFakeMonitoring(t, func(*monitoringpb.ListTimeSeriesRequest) ([]*monitoringpb.TimeSeries, error) {
		return series(point(fixedNow(), intValue(1))), nil
	})
	src, err := New(t.Context(), fakeTrigger(addr))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// Closing before any read creates no client.
	unused, err := New(t.Context(), fakeTrigger(addr))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := unused.Close(); err != nil {
		t.Errorf("Close of an unused source: %v", err)
	}
	if _, err := src.Backlog(t.Context(), fixedNow()); err != nil {
		t.Fatalf("Backlog: %v", err)
	}
	for range 2 {
		if err := src.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if _, err := src.Backlog(t.Context(), fixedNow()); err == nil || !strings.Contains(err.Error(), "source is closed") {
		t.Errorf("Backlog after Close: error = %v, want source is closed", err)
	}
}

func TestNewWithServiceAccountKeyMakesNoCall(t *testing.T) {
	// An unroutable endpoint: New must not dial it.
	src, err := New(t.Context(), trigger(sourcetest.WithMetadata("monitoringEndpoint", "127.0.0.1:1")))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestRegister(t *testing.T) {
	r := sourcetest.AssertRegister(t, Register, trigger(sourcetest.WithoutMetadata("subscriptionName")))
	src, err := r.New(t.Context(), trigger())
	if err != nil {
		t.Fatalf("registry New: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
