package pubsub

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"cloud.google.com/go/monitoring/apiv3/v2/monitoringpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// alignmentPeriod is the period each series is aligned to when an aggregation is set (KEDA's MQL uses delta(3m)
// every 3m).
const alignmentPeriod = 3 * time.Minute

// aggregation is how one configured aggregation maps onto Cloud Monitoring: a per-series aligner and a cross-series
// reducer that folds all matching series into one, and whether the result is squared (variance from stddev).
type aggregation struct {
	aligner monitoringpb.Aggregation_Aligner
	reducer monitoringpb.Aggregation_Reducer
	square  bool
}

// aggregationFor maps a configured aggregation. Cloud Monitoring has percentile aligners for 5, 50, 95 and 99 only,
// and no variance: variance is the square of stddev.
func aggregationFor(name string) (aggregation, bool) {
	switch name {
	case "mean":
		return aggregation{aligner: monitoringpb.Aggregation_ALIGN_MEAN, reducer: monitoringpb.Aggregation_REDUCE_MEAN}, true
	case "median", "percentile50":
		return aggregation{aligner: monitoringpb.Aggregation_ALIGN_PERCENTILE_50, reducer: monitoringpb.Aggregation_REDUCE_PERCENTILE_50}, true
	case "percentile99":
		return aggregation{aligner: monitoringpb.Aggregation_ALIGN_PERCENTILE_99, reducer: monitoringpb.Aggregation_REDUCE_PERCENTILE_99}, true
	case "percentile95":
		return aggregation{aligner: monitoringpb.Aggregation_ALIGN_PERCENTILE_95, reducer: monitoringpb.Aggregation_REDUCE_PERCENTILE_95}, true
	case "percentile5", "percentile05":
		return aggregation{aligner: monitoringpb.Aggregation_ALIGN_PERCENTILE_05, reducer: monitoringpb.Aggregation_REDUCE_PERCENTILE_05}, true
	case "stddev":
		return aggregation{aligner: monitoringpb.Aggregation_ALIGN_STDDEV, reducer: monitoringpb.Aggregation_REDUCE_STDDEV}, true
	case "variance":
		return aggregation{aligner: monitoringpb.Aggregation_ALIGN_STDDEV, reducer: monitoringpb.Aggregation_REDUCE_STDDEV, square: true}, true
	case "sum":
		return aggregation{aligner: monitoringpb.Aggregation_ALIGN_SUM, reducer: monitoringpb.Aggregation_REDUCE_SUM}, true
	case "count":
		return aggregation{aligner: monitoringpb.Aggregation_ALIGN_COUNT, reducer: monitoringpb.Aggregation_REDUCE_SUM}, true
	}
	return aggregation{}, false
}

// Filter returns the Cloud Monitoring filter that selects the trigger's metric for its resource.
func (m Metadata) Filter() string {
	return fmt.Sprintf(`metric.type = "%s" AND resource.type = "pubsub_%s" AND resource.labels.project_id = "%s" AND resource.labels.%s_id = "%s"`,
		m.MetricType, m.Resource, m.Project, m.Resource, m.ResourceID)
}

// Request returns the ListTimeSeries request for a reading at now: the trigger's filter over [now-TimeHorizon, now],
// full view, at most one series per page, aggregated when Aggregation is set.
func (m Metadata) Request(now time.Time) *monitoringpb.ListTimeSeriesRequest {
	req := &monitoringpb.ListTimeSeriesRequest{
		Name:   "projects/" + m.Project,
		Filter: m.Filter(),
		Interval: &monitoringpb.TimeInterval{
			StartTime: timestamppb.New(now.Add(-m.TimeHorizon)),
			EndTime:   timestamppb.New(now),
		},
		View:     monitoringpb.ListTimeSeriesRequest_FULL,
		PageSize: 1,
	}
	if agg, ok := aggregationFor(m.Aggregation); ok {
		req.Aggregation = &monitoringpb.Aggregation{
			AlignmentPeriod:    durationpb.New(alignmentPeriod),
			PerSeriesAligner:   agg.aligner,
			CrossSeriesReducer: agg.reducer,
		}
	}
	return req
}

// errNoPoints says that Cloud Monitoring returned no data for the trigger's metric.
var errNoPoints = errors.New("no time series")

// newestPoint returns the value and end time of ts's newest point, or errNoPoints when ts is nil or empty.
func (m Metadata) newestPoint(ts *monitoringpb.TimeSeries) (float64, time.Time, error) {
	if ts == nil || len(ts.GetPoints()) == 0 {
		return 0, time.Time{}, errNoPoints
	}
	// Cloud Monitoring lists points newest first; pick by end time anyway.
	newest := ts.GetPoints()[0]
	for _, pt := range ts.GetPoints()[1:] {
		if pt.GetInterval().GetEndTime().AsTime().After(newest.GetInterval().GetEndTime().AsTime()) {
			newest = pt
		}
	}
	v, err := m.pointValue(newest.GetValue())
	if err != nil {
		return 0, time.Time{}, err
	}
	var end time.Time
	if newest.GetInterval().GetEndTime() != nil {
		end = newest.GetInterval().GetEndTime().AsTime()
	}
	return v, end, nil
}

// pointValue reads a numeric point. A distribution counts as its sum with aggregation sum and its count with count;
// other distributions need an aggregation that Cloud Monitoring turns into a number.
func (m Metadata) pointValue(tv *monitoringpb.TypedValue) (float64, error) {
	var v float64
	switch x := tv.GetValue().(type) {
	case *monitoringpb.TypedValue_Int64Value:
		v = float64(x.Int64Value)
	case *monitoringpb.TypedValue_DoubleValue:
		v = x.DoubleValue
	case *monitoringpb.TypedValue_DistributionValue:
		switch m.Aggregation {
		case "sum":
			v = x.DistributionValue.GetMean() * float64(x.DistributionValue.GetCount())
		case "count":
			v = float64(x.DistributionValue.GetCount())
		default:
			return 0, fmt.Errorf("point is a distribution; set aggregation (e.g. mean or percentile99) to read %s", m.MetricType)
		}
	default:
		return 0, fmt.Errorf("point has a %s value, not a number", valueKind(tv))
	}
	if agg, ok := aggregationFor(m.Aggregation); ok && agg.square {
		v *= v
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("point value %v is not a finite number", v)
	}
	return v, nil
}

func valueKind(tv *monitoringpb.TypedValue) string {
	switch tv.GetValue().(type) {
	case *monitoringpb.TypedValue_BoolValue:
		return "boolean"
	case *monitoringpb.TypedValue_StringValue:
		return "string"
	case nil:
		return "missing"
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", tv.GetValue()), "*monitoringpb.TypedValue_")
}
