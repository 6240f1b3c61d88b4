package framework

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/internal/sbfake"
	"github.com/kubedispatch/kubedispatch/jobtemplate"
)

// SBQueue is a queue on the stack's Service Bus fake with its own SAS key, a Secret holding its connection string
// and a TriggerAuthentication for it, and a sender.
type SBQueue struct {
	f *F
	// Name is the entity name; Queue the identity messages carry (sb://<host>/<name>).
	Name, Queue string
	// KeyName and Key are the SAS key the fake accepts for it.
	KeyName, Key string
	// Auth references the TriggerAuthentication with the connection string.
	Auth   *v1alpha1.AuthenticationRef
	sender *azservicebus.Sender
	// violations lists completions the fake was asked for while the message's Job was not Complete.
	mu         sync.Mutex
	violations []string
	completed  int
}

// ServiceBusQueue creates a queue named after prefix on the stack's fake with lock duration lock and maxDelivery,
// registers a key for it, and creates the Secret and TriggerAuthentication in the test's namespace. Every completion
// of one of its messages is checked, as the fake reports it before completing, against the message's Jobs: one of
// them must be Complete (see Violations).
func (f *F) ServiceBusQueue(prefix string, lock time.Duration, maxDelivery int) *SBQueue {
	f.T.Helper()
	if stack.ServiceBus == nil {
		f.T.Fatal("the Service Bus fake is not running")
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	key := make([]byte, 24)
	_, _ = rand.Read(key)
	q := &SBQueue{f: f, Name: prefix + "-" + hex.EncodeToString(b), KeyName: "kd-" + hex.EncodeToString(b),
		Key: base64.StdEncoding.EncodeToString(key)}
	q.Queue = "sb://" + stack.ServiceBusAddr + "/" + q.Name
	if err := stack.ServiceBus.CreateQueue(q.Name, lock, maxDelivery); err != nil {
		f.T.Fatalf("creating Service Bus queue %s: %v", q.Name, err)
	}
	if err := stack.ServiceBus.SetKey(q.KeyName, q.Key); err != nil {
		f.T.Fatalf("registering Service Bus key: %v", err)
	}
	sbHooks.register(q)
	f.T.Cleanup(func() { sbHooks.unregister(q) })

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sb-" + q.Name, Namespace: f.Namespace},
		StringData: map[string]string{"connection": q.ConnectionString()}}
	if err := f.Client.Create(f.Ctx, secret); err != nil {
		f.T.Fatalf("creating Secret: %v", err)
	}
	ta := &v1alpha1.TriggerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: "sb-" + q.Name, Namespace: f.Namespace},
		Spec: v1alpha1.TriggerAuthenticationSpec{SecretTargetRef: []v1alpha1.SecretTargetRef{{Parameter: "connection", Name: secret.Name, Key: "connection"}}}}
	if err := f.Client.Create(f.Ctx, ta); err != nil {
		f.T.Fatalf("creating TriggerAuthentication: %v", err)
	}
	q.Auth = &v1alpha1.AuthenticationRef{Name: ta.Name}

	c, err := azservicebus.NewClientFromConnectionString(q.ConnectionString(), nil)
	if err != nil {
		f.T.Fatalf("building Service Bus client: %v", err)
	}
	if q.sender, err = c.NewSender(q.Name, nil); err != nil {
		f.T.Fatalf("building Service Bus sender: %v", err)
	}
	f.T.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = q.sender.Close(ctx)
		_ = c.Close(ctx)
	})
	return q
}

// ConnectionString is the queue's connection string (plain AMQP to the fake).
func (q *SBQueue) ConnectionString() string {
	return sbfake.ConnectionString(stack.ServiceBusAddr, q.KeyName, q.Key)
}

// Send sends one message per entry of props, with body "doc-<i>" and the entry as application properties, one at a
// time (the fake does not take batched transfers), in order.
func (q *SBQueue) Send(props []map[string]any) {
	q.f.T.Helper()
	for i, p := range props {
		m := &azservicebus.Message{Body: fmt.Appendf(nil, "doc-%d", i), ApplicationProperties: p}
		if err := q.sender.SendMessage(q.f.Ctx, m, nil); err != nil {
			q.f.T.Fatalf("sending message %d to %s: %v", i, q.Name, err)
		}
	}
}

// Stats returns the fake's counters of the queue.
func (q *SBQueue) Stats() sbfake.Stats {
	q.f.T.Helper()
	s, err := stack.ServiceBus.Stats(q.Name)
	if err != nil {
		q.f.T.Fatalf("reading Service Bus queue %s: %v", q.Name, err)
	}
	return s
}

// DeadLetters returns the queue's dead-lettered messages.
func (q *SBQueue) DeadLetters() []sbfake.DeadLetter {
	q.f.T.Helper()
	d, err := stack.ServiceBus.DeadLetters(q.Name)
	if err != nil {
		q.f.T.Fatalf("reading the dead letters of %s: %v", q.Name, err)
	}
	return d
}

// Violations returns the completions that came before their message's Job was Complete, and how many completions
// were checked.
func (q *SBQueue) Violations() ([]string, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.violations...), q.completed
}

// check is called by the hook before the fake completes message seq of q: one of its Jobs must be Complete.
func (q *SBQueue) check(seq int64) {
	var list batchv1.JobList
	key := jobtemplate.MessageKey(q.Queue, strconv.FormatInt(seq, 10))
	err := q.f.Client.List(context.Background(), &list, client.InNamespace(q.f.Namespace), client.MatchingLabels{v1alpha1.LabelMessage: key})
	complete := false
	for i := range list.Items {
		for _, c := range list.Items[i].Status.Conditions {
			if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
				complete = true
			}
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.completed++
	switch {
	case err != nil:
		q.violations = append(q.violations, fmt.Sprintf("message %d: listing its Jobs: %v", seq, err))
	case !complete:
		q.violations = append(q.violations, fmt.Sprintf("message %d completed while none of its %d Jobs was Complete", seq, len(list.Items)))
	}
}

// sbHookServer receives the fake's before-completion calls and hands each to its queue's check.
type sbHookServer struct {
	mu     sync.Mutex
	queues map[string]*SBQueue
}

var sbHooks = &sbHookServer{queues: map[string]*SBQueue{}}

func (s *sbHookServer) register(q *SBQueue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queues[q.Name] = q
}

func (s *sbHookServer) unregister(q *SBQueue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.queues, q.Name)
}

func (s *sbHookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var c sbfake.Completion
	if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	q := s.queues[c.Entity]
	s.mu.Unlock()
	if q != nil {
		q.check(c.SequenceNumber)
	}
	w.WriteHeader(http.StatusNoContent)
}

// startSBHook serves the hook on loopback and points the stack's fake at it; Main calls it once.
func startSBHook() (stop func(), err error) {
	if stack.ServiceBus == nil {
		return func() {}, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the Service Bus hook: %w", err)
	}
	srv := &http.Server{Handler: sbHooks, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	if err := stack.ServiceBus.SetHook("http://" + l.Addr().String() + "/"); err != nil {
		srv.Close()
		return nil, fmt.Errorf("setting the Service Bus hook: %w", err)
	}
	return func() { srv.Close() }, nil
}
