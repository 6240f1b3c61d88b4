package servicebus

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus/admin"
	"github.com/google/go-cmp/cmp"

	"github.com/kubedispatch/kubedispatch/internal/sourcetest"
	"github.com/kubedispatch/kubedispatch/sources"
)

// fixedNow is the instant every test reads at.
func fixedNow() time.Time { return time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC) }

const atomNS = `xmlns="http://www.w3.org/2005/Atom"`

// queueEntry is the ATOM entry of a queue's description with its counts.
const queueEntry = `<entry ` + atomNS + `><id>https://fake/%[1]s?api-version=2024-05</id><title type="text">%[1]s</title>
<content type="application/xml"><QueueDescription xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
<MessageCount>%[3]d</MessageCount><Status>Active</Status>
<CreatedAt>2024-01-01T00:00:00Z</CreatedAt><UpdatedAt>2024-01-01T00:00:00Z</UpdatedAt><AccessedAt>0001-01-01T00:00:00</AccessedAt>
<CountDetails xmlns:d2p1="http://schemas.microsoft.com/netservices/2011/06/servicebus">
<d2p1:ActiveMessageCount>%[2]d</d2p1:ActiveMessageCount><d2p1:DeadLetterMessageCount>%[4]d</d2p1:DeadLetterMessageCount>
<d2p1:ScheduledMessageCount>2</d2p1:ScheduledMessageCount><d2p1:TransferMessageCount>0</d2p1:TransferMessageCount>
<d2p1:TransferDeadLetterMessageCount>0</d2p1:TransferDeadLetterMessageCount></CountDetails>
</QueueDescription></content></entry>`

// subscriptionEntry is the ATOM entry of a subscription's description with its counts.
const subscriptionEntry = `<entry ` + atomNS + `><id>https://fake/%[1]s?api-version=2024-05</id><title type="text">%[1]s</title>
<content type="application/xml"><SubscriptionDescription xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
<MessageCount>%[3]d</MessageCount><Status>Active</Status>
<CreatedAt>2024-01-01T00:00:00Z</CreatedAt><UpdatedAt>2024-01-01T00:00:00Z</UpdatedAt><AccessedAt>0001-01-01T00:00:00</AccessedAt>
<CountDetails xmlns:d2p1="http://schemas.microsoft.com/netservices/2011/06/servicebus">
<d2p1:ActiveMessageCount>%[2]d</d2p1:ActiveMessageCount><d2p1:DeadLetterMessageCount>%[4]d</d2p1:DeadLetterMessageCount>
<d2p1:ScheduledMessageCount>0</d2p1:ScheduledMessageCount><d2p1:TransferMessageCount>0</d2p1:TransferMessageCount>
<d2p1:TransferDeadLetterMessageCount>0</d2p1:TransferDeadLetterMessageCount></CountDetails>
</SubscriptionDescription></content></entry>`

// emptyFeed is what Service Bus answers, with 200, for an entity that does not exist.
const emptyFeed = `<feed ` + atomNS + `><title type="text">Publicly Listed Services</title><id>uuid:x</id><updated>2024-01-01T00:00:00Z</updated></feed>`

// fakeNamespace is a Service Bus administration endpoint. Counts are active messages; every entity also holds 1
// dead-lettered and (queues) 2 scheduled messages, which must not be counted.
type fakeNamespace struct {
	queues        map[string]int32
	subscriptions map[string]map[string]int32 // topic -> subscription -> active
	status        map[string]int              // path -> forced HTTP status

	mu    sync.Mutex
	paths []string
}

func (f *fakeNamespace) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.paths = append(f.paths, r.URL.Path)
	f.mu.Unlock()
	if !strings.HasPrefix(r.Header.Get("Authorization"), "SharedAccessSignature ") {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `<Error><Code>401</Code><Detail>no authorization</Detail></Error>`)
		return
	}
	if code, ok := f.status[r.URL.Path]; ok {
		w.WriteHeader(code)
		fmt.Fprintf(w, `<Error><Code>%d</Code><Detail>forced by the test</Detail></Error>`, code)
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch {
	case r.URL.Path == "/$Resources/Queues":
		f.writeFeed(w, r, f.queues, queueEntry)
	case len(parts) == 1:
		f.writeEntry(w, parts[0], f.queues, queueEntry)
	case len(parts) == 2 && parts[1] == "Subscriptions":
		f.writeFeed(w, r, f.subscriptions[parts[0]], subscriptionEntry)
	case len(parts) == 3 && parts[1] == "Subscriptions":
		f.writeEntry(w, parts[2], f.subscriptions[parts[0]], subscriptionEntry)
	default:
		w.WriteHeader(http.StatusBadRequest)
	}
}

func (f *fakeNamespace) writeEntry(w http.ResponseWriter, name string, entities map[string]int32, tmpl string) {
	active, ok := entities[name]
	if !ok {
		w.Header().Set("Content-Type", "application/atom+xml;type=feed;charset=utf-8")
		fmt.Fprint(w, emptyFeed)
		return
	}
	w.Header().Set("Content-Type", "application/atom+xml;type=entry;charset=utf-8")
	fmt.Fprintf(w, tmpl, name, active, int64(active)+3, 1)
}

// writeFeed writes one page of entities, in name order, honouring $skip and $top as Service Bus does.
func (f *fakeNamespace) writeFeed(w http.ResponseWriter, r *http.Request, entities map[string]int32, tmpl string) {
	names := make([]string, 0, len(entities))
	for n := range entities {
		names = append(names, n)
	}
	slices.Sort(names)
	skip, _ := strconv.Atoi(r.URL.Query().Get("$skip"))
	top, err := strconv.Atoi(r.URL.Query().Get("$top"))
	if err != nil || top <= 0 {
		top = 100
	}
	names = names[min(skip, len(names)):]
	names = names[:min(top, len(names))]
	w.Header().Set("Content-Type", "application/atom+xml;type=feed;charset=utf-8")
	var b strings.Builder
	b.WriteString(`<feed ` + atomNS + `><title type="text">Entities</title><id>https://fake/list</id>`)
	for _, n := range names {
		active := entities[n]
		fmt.Fprintf(&b, tmpl, n, active, int64(active)+3, 1)
	}
	b.WriteString(`</feed>`)
	fmt.Fprint(w, b.String())
}

func (f *fakeNamespace) requested() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.paths...)
}

// newFakeNamespace serves a namespace with queues jobs (7), empty (0), regex candidates, 150 bulk queues of 1, topic
// orders with subscriptions workers (12), workers-1 (2), workers-2 (6) and audit (40), and forced failures.
func newFakeNamespace() *fakeNamespace {
	f := &fakeNamespace{
		queues: map[string]int32{"jobs": 7, "empty": 0, "jobs-a": 3, "jobs-b": 10, "jobs-ab": 4, "xjobs-a": 50},
		subscriptions: map[string]map[string]int32{
			"orders": {"workers": 12, "workers-1": 2, "workers-2": 6, "audit": 40},
		},
		status: map[string]int{
			"/boom":                        http.StatusInternalServerError,
			"/gone404":                     http.StatusNotFound,
			"/denied":                      http.StatusUnauthorized,
			"/missing-topic/Subscriptions": http.StatusNotFound,
			"/broken-topic/Subscriptions":  http.StatusServiceUnavailable,
		},
	}
	for i := range 150 {
		f.queues[fmt.Sprintf("bulk-%03d", i)] = 1
	}
	return f
}

// startNamespace serves fake over TLS until the test ends and returns its host:port and a client that trusts it.
func startNamespace(t *testing.T, fake *fakeNamespace) (string, *http.Client) {
	t.Helper()
	ts := httptest.NewTLSServer(fake)
	t.Cleanup(ts.Close)
	u, err := url.Parse(ts.URL)
	if err != nil {
		t.Fatalf("parsing %s: %v", ts.URL, err)
	}
	return u.Host, ts.Client()
}

// testOptions make the real administration client trust the test server and give up at once.
func testOptions(httpClient *http.Client) *admin.ClientOptions {
	return &admin.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: httpClient,
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}}
}

func TestBacklog(t *testing.T) {
	fake := newFakeNamespace()
	host, httpClient := startNamespace(t, fake)
	conn := sourcetest.WithEnv("SB_CONN", connString(host))
	regex := sourcetest.WithMetadata("useRegex", "true")
	cases := map[string]struct {
		opts      []sourcetest.Option
		want      sources.Backlog
		wantPaths []string
	}{
		"queue": {
			want:      sources.Backlog{Value: 7, Target: 5, Active: true, SampledAt: fixedNow()},
			wantPaths: []string{"/jobs"},
		},
		"empty queue is inactive": {
			opts:      []sourcetest.Option{sourcetest.WithMetadata("queueName", "empty")},
			want:      sources.Backlog{Value: 0, Target: 5, Active: false, SampledAt: fixedNow()},
			wantPaths: []string{"/empty"},
		},
		"at the activation count is inactive": {
			opts: []sourcetest.Option{sourcetest.WithMetadata("messageCount", "1"),
				sourcetest.WithMetadata("activationMessageCount", "7")},
			want:      sources.Backlog{Value: 7, Target: 1, Active: false, SampledAt: fixedNow()},
			wantPaths: []string{"/jobs"},
		},
		"above the activation count is active": {
			opts: []sourcetest.Option{sourcetest.WithMetadata("messageCount", "1"),
				sourcetest.WithMetadata("activationMessageCount", "6")},
			want:      sources.Backlog{Value: 7, Target: 1, Active: true, SampledAt: fixedNow()},
			wantPaths: []string{"/jobs"},
		},
		"subscription": {
			opts:      []sourcetest.Option{subscriptionEntity, sourcetest.WithMetadata("messageCount", "3")},
			want:      sources.Backlog{Value: 12, Target: 3, Active: true, SampledAt: fixedNow()},
			wantPaths: []string{"/orders/Subscriptions/workers"},
		},
		"queue regex sum is anchored": {
			opts:      []sourcetest.Option{regex, sourcetest.WithMetadata("queueName", "jobs-[ab]")},
			want:      sources.Backlog{Value: 13, Target: 5, Active: true, SampledAt: fixedNow()},
			wantPaths: []string{"/$Resources/Queues", "/$Resources/Queues"},
		},
		"queue regex max": {
			opts: []sourcetest.Option{regex, sourcetest.WithMetadata("queueName", "jobs-.*"),
				sourcetest.WithMetadata("operation", "max")},
			want:      sources.Backlog{Value: 10, Target: 5, Active: true, SampledAt: fixedNow()},
			wantPaths: []string{"/$Resources/Queues", "/$Resources/Queues"},
		},
		"queue regex avg divides down": {
			opts: []sourcetest.Option{regex, sourcetest.WithMetadata("queueName", "jobs-.*"),
				sourcetest.WithMetadata("operation", "avg")},
			want:      sources.Backlog{Value: 5, Target: 5, Active: true, SampledAt: fixedNow()},
			wantPaths: []string{"/$Resources/Queues", "/$Resources/Queues"},
		},
		"queue regex across pages": {
			opts:      []sourcetest.Option{regex, sourcetest.WithMetadata("queueName", "bulk-\\d+")},
			want:      sources.Backlog{Value: 150, Target: 5, Active: true, SampledAt: fixedNow()},
			wantPaths: []string{"/$Resources/Queues", "/$Resources/Queues"},
		},
		"queue regex matching nothing": {
			opts: []sourcetest.Option{regex, sourcetest.WithMetadata("queueName", "nothing-.*"),
				sourcetest.WithMetadata("operation", "avg")},
			want:      sources.Backlog{Value: 0, Target: 5, Active: false, SampledAt: fixedNow()},
			wantPaths: []string{"/$Resources/Queues", "/$Resources/Queues"},
		},
		"subscription regex sum": {
			opts: []sourcetest.Option{subscriptionEntity, regex,
				sourcetest.WithMetadata("subscriptionName", "workers-.+")},
			want:      sources.Backlog{Value: 8, Target: 5, Active: true, SampledAt: fixedNow()},
			wantPaths: []string{"/orders/Subscriptions"},
		},
		"subscription regex max": {
			opts: []sourcetest.Option{subscriptionEntity, regex,
				sourcetest.WithMetadata("subscriptionName", "workers.*"),
				sourcetest.WithMetadata("operation", "max")},
			want:      sources.Backlog{Value: 12, Target: 5, Active: true, SampledAt: fixedNow()},
			wantPaths: []string{"/orders/Subscriptions"},
		},
		"subscription regex avg": {
			opts: []sourcetest.Option{subscriptionEntity, regex,
				sourcetest.WithMetadata("subscriptionName", "workers-.+"),
				sourcetest.WithMetadata("operation", "avg")},
			want:      sources.Backlog{Value: 4, Target: 5, Active: true, SampledAt: fixedNow()},
			wantPaths: []string{"/orders/Subscriptions"},
		},
		"regex of an unknown topic matches nothing": {
			opts:      []sourcetest.Option{subscriptionEntity, regex, sourcetest.WithMetadata("topicName", "nobody")},
			want:      sources.Backlog{Value: 0, Target: 5, Active: false, SampledAt: fixedNow()},
			wantPaths: []string{"/nobody/Subscriptions"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := len(fake.requested())
			src, err := newWithOptions(trigger(append([]sourcetest.Option{conn}, tc.opts...)...),
				testOptions(httpClient))
			if err != nil {
				t.Fatalf("newWithOptions: %v", err)
			}
			got, err := src.Backlog(t.Context(), fixedNow())
			if err != nil {
				t.Fatalf("Backlog: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Backlog mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantPaths, fake.requested()[before:]); diff != "" {
				t.Errorf("requested paths mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBacklogErrors(t *testing.T) {
	fake := newFakeNamespace()
	host, httpClient := startNamespace(t, fake)
	conn := sourcetest.WithEnv("SB_CONN", connString(host))
	cases := map[string]struct {
		opts         []sourcetest.Option
		wantMsg      string
		wantNotFound bool
		wantStatus   int
	}{
		"missing queue (empty feed)": {
			opts:         []sourcetest.Option{sourcetest.WithMetadata("queueName", "nope")},
			wantMsg:      "reading runtime properties of Service Bus queue nope in " + host + ": queue not found",
			wantNotFound: true,
		},
		"missing queue (404)": {
			opts:         []sourcetest.Option{sourcetest.WithMetadata("queueName", "gone404")},
			wantMsg:      "reading runtime properties of Service Bus queue gone404 in " + host + ": queue not found",
			wantNotFound: true,
		},
		"missing subscription": {
			opts:         []sourcetest.Option{subscriptionEntity, sourcetest.WithMetadata("subscriptionName", "nope")},
			wantMsg:      "reading runtime properties of Service Bus subscription orders/Subscriptions/nope in " + host + ": subscription not found",
			wantNotFound: true,
		},
		"missing topic": {
			opts:         []sourcetest.Option{subscriptionEntity, sourcetest.WithMetadata("topicName", "nobody")},
			wantMsg:      "reading runtime properties of Service Bus subscription nobody/Subscriptions/workers in " + host + ": subscription not found",
			wantNotFound: true,
		},
		"server error is transient": {
			opts:       []sourcetest.Option{sourcetest.WithMetadata("queueName", "boom")},
			wantMsg:    "reading runtime properties of Service Bus queue boom in " + host + ": GET https://" + host + "/boom: HTTP 500: forced by the test",
			wantStatus: http.StatusInternalServerError,
		},
		"unauthorized is transient": {
			opts:       []sourcetest.Option{sourcetest.WithMetadata("queueName", "denied")},
			wantMsg:    "reading runtime properties of Service Bus queue denied in " + host + ": GET https://" + host + "/denied: HTTP 401: forced by the test",
			wantStatus: http.StatusUnauthorized,
		},
		"listing a missing topic's subscriptions": {
			opts: []sourcetest.Option{subscriptionEntity, sourcetest.WithMetadata("useRegex", "true"),
				sourcetest.WithMetadata("topicName", "missing-topic")},
			wantMsg:      "listing subscriptions of Service Bus topic missing-topic in " + host + ": topic not found: GET https://" + host + "/missing-topic/Subscriptions: HTTP 404: forced by the test",
			wantNotFound: true,
			wantStatus:   http.StatusNotFound,
		},
		"listing error is transient": {
			opts: []sourcetest.Option{subscriptionEntity, sourcetest.WithMetadata("useRegex", "true"),
				sourcetest.WithMetadata("topicName", "broken-topic")},
			wantMsg:    "listing subscriptions of Service Bus topic broken-topic in " + host + ": GET https://" + host + "/broken-topic/Subscriptions: HTTP 503: forced by the test",
			wantStatus: http.StatusServiceUnavailable,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			src, err := newWithOptions(trigger(append([]sourcetest.Option{conn}, tc.opts...)...),
				testOptions(httpClient))
			if err != nil {
				t.Fatalf("newWithOptions: %v", err)
			}
			got, err := src.Backlog(t.Context(), fixedNow())
			if err == nil {
				t.Fatalf("Backlog = %+v, want an error", got)
			}
			if diff := cmp.Diff(tc.wantMsg, err.Error()); diff != "" {
				t.Errorf("error message mismatch (-want +got):\n%s", diff)
			}
			sourcetest.AssertBacklogError(t, err, tc.wantNotFound)
			var re *azcore.ResponseError
			switch {
			case tc.wantStatus == 0 && errors.As(err, &re):
				t.Errorf("error %v wraps an HTTP error, want none", err)
			case tc.wantStatus != 0 && (!errors.As(err, &re) || re.StatusCode != tc.wantStatus):
				t.Errorf("error %v does not wrap an *azcore.ResponseError with status %d", err, tc.wantStatus)
			}
		})
	}
}

// TestSecretNeverInErrors reads through every failing path with a connection string whose key is secretKey and
// checks that no error text contains it.
func TestSecretNeverInErrors(t *testing.T) {
	fake := newFakeNamespace()
	host, httpClient := startNamespace(t, fake)
	configs := map[string]sources.Config{
		"server error": trigger(sourcetest.WithEnv("SB_CONN", connString(host)),
			sourcetest.WithMetadata("queueName", "boom")),
		"unauthorized": trigger(sourcetest.WithEnv("SB_CONN", connString(host)),
			sourcetest.WithMetadata("queueName", "denied")),
		"missing queue": trigger(sourcetest.WithEnv("SB_CONN", connString(host)),
			sourcetest.WithMetadata("queueName", "nope")),
		"unreachable":     trigger(sourcetest.WithEnv("SB_CONN", connString("127.0.0.1:1"))),
		"key in endpoint": trigger(sourcetest.WithEnv("SB_CONN", "Endpoint=sb://"+secretKey+"/;SharedAccessKeyName=k")),
		"no separator":    trigger(sourcetest.WithEnv("SB_CONN", "Endpoint=sb://x/;SharedAccessKey"+secretKey)),
		"key as the string": trigger(sourcetest.WithAuth("connection", secretKey),
			sourcetest.WithoutMetadata("connectionFromEnv")),
		"key in a bad regex": trigger(sourcetest.WithEnv("SB_CONN", connString(host)),
			sourcetest.WithMetadata("useRegex", "true"), sourcetest.WithMetadata("queueName", "(")),
	}
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			src, err := newWithOptions(cfg, testOptions(httpClient))
			if err == nil {
				_, err = src.Backlog(t.Context(), fixedNow())
			}
			if err == nil {
				t.Fatal("want an error")
			}
			if strings.Contains(err.Error(), secretKey) || strings.Contains(fmt.Sprintf("%+v", err), secretKey) {
				t.Errorf("error %q quotes the SharedAccessKey", err)
			}
		})
	}
}

func TestNewWithAdmin(t *testing.T) {
	fake := newFakeNamespace()
	host, httpClient := startNamespace(t, fake)
	client, err := admin.NewClientFromConnectionString(connString(host), testOptions(httpClient))
	if err != nil {
		t.Fatalf("creating the admin client: %v", err)
	}
	// The trigger's own connection string names another namespace: the given client wins.
	src, err := NewWithAdmin(trigger(subscriptionEntity), client)
	if err != nil {
		t.Fatalf("NewWithAdmin: %v", err)
	}
	got, err := src.Backlog(t.Context(), fixedNow())
	if err != nil {
		t.Fatalf("Backlog: %v", err)
	}
	if diff := cmp.Diff(sources.Backlog{Value: 12, Target: 5, Active: true, SampledAt: fixedNow()}, got); diff != "" {
		t.Errorf("Backlog mismatch (-want +got):\n%s", diff)
	}
	if got, want := src.Metadata().EntityName(), "orders/Subscriptions/workers"; got != want {
		t.Errorf("EntityName() = %q, want %q", got, want)
	}
	for range 2 {
		if err := src.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if _, err := NewWithAdmin(trigger(sourcetest.WithoutMetadata("queueName")), client); !sources.IsConfigError(err) {
		t.Errorf("NewWithAdmin with a bad config: error = %v, want a ConfigError", err)
	}
}

func TestNewWithWorkloadIdentityMakesNoCall(t *testing.T) {
	tokenFile := t.TempDir() + "/token"
	cases := map[string]map[string]string{
		"workload identity environment": {
			"AZURE_CLIENT_ID":            "00000000-0000-0000-0000-000000000001",
			"AZURE_TENANT_ID":            "00000000-0000-0000-0000-000000000002",
			"AZURE_FEDERATED_TOKEN_FILE": tokenFile,
		},
		"no workload identity environment": {
			"AZURE_CLIENT_ID":            "",
			"AZURE_TENANT_ID":            "",
			"AZURE_FEDERATED_TOKEN_FILE": "",
		},
	}
	for name, env := range cases {
		t.Run(name, func(t *testing.T) {
			for k, v := range env {
				t.Setenv(k, v)
			}
			src, err := New(t.Context(), trigger(workloadIdentity, sourcetest.WithMetadata("namespace", "jobs-ns"),
				sourcetest.WithMetadata("cloud", "AzureChinaCloud")))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			s, ok := src.(*Source)
			if !ok {
				t.Fatalf("New() = %T, want *Source", src)
			}
			if got, want := s.Metadata().Namespace, "jobs-ns.servicebus.chinacloudapi.cn"; got != want {
				t.Errorf("Namespace = %q, want %q", got, want)
			}
			if err := src.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

func TestRegister(t *testing.T) {
	r := sourcetest.AssertRegister(t, Register, trigger(sourcetest.WithoutMetadata("queueName")))
	src, err := r.New(t.Context(), trigger())
	if err != nil {
		t.Fatalf("registry New: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
