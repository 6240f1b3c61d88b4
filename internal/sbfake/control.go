package sbfake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Control is a client for the fake's HTTP control API. Its zero Client means a client with a 30-second timeout.
// Entity names are as in AMQP addresses: "jobs" for a queue, "events/Subscriptions/audit" (or
// "events/subscriptions/audit") for a subscription.
type Control struct {
	// URL is the control API's base URL, e.g. "http://127.0.0.1:40123".
	URL string `json:"url"`
	// Client, if set, is used for the requests.
	Client *http.Client `json:"-"`
}

// NewControl returns a Control for the API at baseURL.
func NewControl(baseURL string) *Control {
	return &Control{URL: strings.TrimRight(baseURL, "/")}
}

// Stats are an entity's counters. Active, Locked and DeadLettered are current counts; the others count events since
// the entity was created. LateSettles counts settlements (complete, abandon, dead-letter) refused because the lock
// was lost. For a topic they are the sums over its subscriptions.
type Stats struct {
	Active       int `json:"active"`
	Locked       int `json:"locked"`
	DeadLettered int `json:"deadLettered"`
	Completed    int `json:"completed"`
	Abandoned    int `json:"abandoned"`
	LockExpired  int `json:"lockExpired"`
	Renewals     int `json:"renewals"`
	LateSettles  int `json:"lateSettles"`
}

// DeadLetter is a message in an entity's dead-letter queue. DeliveryCount is how often it had been delivered when it
// was dead-lettered.
type DeadLetter struct {
	SequenceNumber             int64          `json:"sequenceNumber"`
	MessageID                  string         `json:"messageId"`
	Body                       string         `json:"body"`
	DeliveryCount              int            `json:"deliveryCount"`
	ApplicationProperties      map[string]any `json:"applicationProperties"`
	DeadLetterReason           string         `json:"deadLetterReason"`
	DeadLetterErrorDescription string         `json:"deadLetterErrorDescription"`
}

// Completed is a message that was completed. DeliveryCount is the ReceivedMessage.DeliveryCount of the delivery that
// completed it.
type Completed struct {
	SequenceNumber int64     `json:"sequenceNumber"`
	MessageID      string    `json:"messageId"`
	Body           string    `json:"body"`
	DeliveryCount  int       `json:"deliveryCount"`
	CompletedAt    time.Time `json:"completedAt"`
}

// Completion is what the fake POSTs, as JSON, to the completion hook (see SetHook) before it completes a message.
type Completion struct {
	Entity         string `json:"entity"`
	SequenceNumber int64  `json:"sequenceNumber"`
	MessageID      string `json:"messageId"`
	Body           string `json:"body"`
	DeliveryCount  int    `json:"deliveryCount"`
}

type entitySettings struct {
	LockDurationMs   int64 `json:"lockDurationMs,omitempty"`
	MaxDeliveryCount int   `json:"maxDeliveryCount,omitempty"`
}

func settings(lock time.Duration, maxDelivery int) entitySettings {
	return entitySettings{LockDurationMs: lock.Milliseconds(), MaxDeliveryCount: maxDelivery}
}

// CreateQueue creates the queue name, or changes its settings if it exists. A zero lock or maxDelivery means the
// default (30 s, 10).
func (c *Control) CreateQueue(name string, lock time.Duration, maxDelivery int) error {
	if err := c.do(http.MethodPut, entityPath(name), settings(lock, maxDelivery), nil); err != nil {
		return fmt.Errorf("creating queue %s: %w", name, err)
	}
	return nil
}

// CreateTopic creates the topic name.
func (c *Control) CreateTopic(name string) error {
	if err := c.do(http.MethodPut, entityPath(name)+"?kind=topic", struct{}{}, nil); err != nil {
		return fmt.Errorf("creating topic %s: %w", name, err)
	}
	return nil
}

// CreateSubscription creates the subscription sub of topic (which must exist), or changes its settings. A zero lock
// or maxDelivery means the default.
func (c *Control) CreateSubscription(topic, sub string, lock time.Duration, maxDelivery int) error {
	if err := c.do(http.MethodPut, entityPath(topic+"/subscriptions/"+sub), settings(lock, maxDelivery), nil); err != nil {
		return fmt.Errorf("creating subscription %s/%s: %w", topic, sub, err)
	}
	return nil
}

// DeleteEntity deletes a queue, a topic (with its subscriptions) or a subscription, and all their messages; links
// attached to it are detached with amqp:not-found.
func (c *Control) DeleteEntity(name string) error {
	if err := c.do(http.MethodDelete, entityPath(name), nil, nil); err != nil {
		return fmt.Errorf("deleting entity %s: %w", name, err)
	}
	return nil
}

// SetKey registers (or replaces) the SAS key keyName. Once any key is registered, only tokens signed with a
// registered key are accepted.
func (c *Control) SetKey(keyName, key string) error {
	if err := c.do(http.MethodPut, "/keys/"+url.PathEscape(keyName), map[string]string{"key": key}, nil); err != nil {
		return fmt.Errorf("registering SAS key %s: %w", keyName, err)
	}
	return nil
}

// Stats returns the counters of a queue, subscription or topic.
func (c *Control) Stats(entity string) (Stats, error) {
	var s Stats
	if err := c.do(http.MethodGet, entityPath(entity), nil, &s); err != nil {
		return Stats{}, fmt.Errorf("reading stats of %s: %w", entity, err)
	}
	return s, nil
}

// DeadLetters returns the messages in the dead-letter queue of entity, oldest first, without removing them.
func (c *Control) DeadLetters(entity string) ([]DeadLetter, error) {
	var dl []DeadLetter
	if err := c.do(http.MethodGet, entityPath(entity)+"/deadletters", nil, &dl); err != nil {
		return nil, fmt.Errorf("reading dead letters of %s: %w", entity, err)
	}
	return dl, nil
}

// Completed returns the messages completed on entity, in the order of completion.
func (c *Control) Completed(entity string) ([]Completed, error) {
	var done []Completed
	if err := c.do(http.MethodGet, entityPath(entity)+"/completed", nil, &done); err != nil {
		return nil, fmt.Errorf("reading completed messages of %s: %w", entity, err)
	}
	return done, nil
}

// SetHook sets the completion hook: before completing any message the fake POSTs a Completion to hookURL and waits
// (up to 10 s) for the answer, which does not change the outcome. An empty hookURL removes the hook.
func (c *Control) SetHook(hookURL string) error {
	if err := c.do(http.MethodPut, "/hook", map[string]string{"url": hookURL}, nil); err != nil {
		return fmt.Errorf("setting the completion hook: %w", err)
	}
	return nil
}

// Ready reports whether the control API answers.
func (c *Control) Ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", req.URL, resp.Status)
	}
	return nil
}

func entityPath(name string) string {
	parts := strings.Split(strings.Trim(name, "/"), "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return "/entities/" + strings.Join(parts, "/")
}

func (c *Control) client() *http.Client {
	if c.Client != nil {
		return c.Client
	}
	return defaultClient
}

var defaultClient = &http.Client{Timeout: 30 * time.Second}

func (c *Control) do(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.URL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decoding the answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}
