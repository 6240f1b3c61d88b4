package triggers

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/monitoring/apiv3/v2/monitoringpb"
	"google.golang.org/genproto/googleapis/api/metric"
	"google.golang.org/genproto/googleapis/api/monitoredres"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubedispatch/kubedispatch/internal/sourcetest"
)

// undeliveredMetric is the metric the gcp-pubsub trigger reads by default.
const undeliveredMetric = "pubsub.googleapis.com/subscription/num_undelivered_messages"

// backlogBook is what the test did on the Pub/Sub emulator, per subscription ID: the number of messages published and
// not acknowledged, and when that number last changed. The fake MetricService reports it as Pub/Sub reports
// num_undelivered_messages to Cloud Monitoring: one sample per change, stamped with the time of the change.
type backlogBook struct {
	mu      sync.Mutex
	count   map[string]int64
	changed map[string]time.Time
}

func newBacklogBook() *backlogBook {
	return &backlogBook{count: map[string]int64{}, changed: map[string]time.Time{}}
}

// add changes a subscription's count by n and returns the new count and the sample time.
func (b *backlogBook) add(sub string, n int64) (int64, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count[sub] += n
	b.changed[sub] = time.Now()
	return b.count[sub], b.changed[sub]
}

// get returns a subscription's count and sample time; ok is false when the test never touched it.
func (b *backlogBook) get(sub string) (n int64, sampled time.Time, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, ok = b.count[sub]
	return n, b.changed[sub], ok
}

// fakeMonitoring is an in-process Cloud Monitoring MetricService for one project. ListTimeSeries answers a filter on
// num_undelivered_messages of a subscription the book knows with one GAUGE INT64 series; a metric or subscription it
// has no data for yields no series (as Cloud Monitoring does); another project is NotFound.
type fakeMonitoring struct {
	monitoringpb.UnimplementedMetricServiceServer
	project string
	book    *backlogBook

	mu       sync.Mutex
	requests []*monitoringpb.ListTimeSeriesRequest
}

// filterClause matches one `key = "value"` clause of a Cloud Monitoring filter.
var filterClause = regexp.MustCompile(`([a-z_.]+) = "([^"]*)"`)

func (m *fakeMonitoring) ListTimeSeries(_ context.Context, req *monitoringpb.ListTimeSeriesRequest) (*monitoringpb.ListTimeSeriesResponse, error) {
	m.mu.Lock()
	m.requests = append(m.requests, req)
	m.mu.Unlock()
	if req.GetName() != "projects/"+m.project {
		return nil, status.Errorf(codes.NotFound, "project %s not found", req.GetName())
	}
	clauses := map[string]string{}
	for _, c := range filterClause.FindAllStringSubmatch(req.GetFilter(), -1) {
		clauses[c[1]] = c[2]
	}
	if clauses["resource.labels.project_id"] != m.project || clauses["resource.type"] != "pubsub_subscription" {
		return &monitoringpb.ListTimeSeriesResponse{}, nil
	}
	if req.GetInterval().GetEndTime() == nil || req.GetInterval().GetStartTime() == nil {
		return nil, status.Error(codes.InvalidArgument, "interval is required")
	}
	sub := clauses["resource.labels.subscription_id"]
	n, sampled, ok := m.book.get(sub)
	if clauses["metric.type"] != undeliveredMetric || !ok {
		return &monitoringpb.ListTimeSeriesResponse{}, nil
	}
	at := timestamppb.New(sampled)
	return &monitoringpb.ListTimeSeriesResponse{TimeSeries: []*monitoringpb.TimeSeries{{
		Metric:     &metric.Metric{Type: undeliveredMetric},
		Resource:   &monitoredres.MonitoredResource{Type: "pubsub_subscription", Labels: map[string]string{"project_id": m.project, "subscription_id": sub}},
		MetricKind: metric.MetricDescriptor_GAUGE,
		ValueType:  metric.MetricDescriptor_INT64,
		Points: []*monitoringpb.Point{{
			Interval: &monitoringpb.TimeInterval{StartTime: at, EndTime: at},
			Value:    &monitoringpb.TypedValue{Value: &monitoringpb.TypedValue_Int64Value{Int64Value: n}},
		}},
	}}}, nil
}

// filtersSeen returns the distinct filters of the requests received so far.
func (m *fakeMonitoring) filtersSeen() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int{}
	for _, r := range m.requests {
		out[r.GetFilter()]++
	}
	return out
}

// startFakeMonitoring serves a fakeMonitoring on 127.0.0.1:0 until the test ends and returns it and its address.
func startFakeMonitoring(t *testing.T, project string, book *backlogBook) (*fakeMonitoring, string) {
	t.Helper()
	fake := &fakeMonitoring{project: project, book: book}
	return fake, sourcetest.ServeMetricService(t, fake)
}

// subscriptionFilter is the filter the gcp-pubsub trigger must send for a subscription's backlog.
func subscriptionFilter(project, sub string) string {
	return fmt.Sprintf(`metric.type = "%s" AND resource.type = "pubsub_subscription" AND resource.labels.project_id = "%s" AND resource.labels.subscription_id = "%s"`,
		undeliveredMetric, project, sub)
}
