package worker

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// SQS is a worker simulator for one SQS queue and the pods matching a label selector in one namespace.
//
// kwok pods run nothing, so this plays the worker's part: when a pod is Running it receives one message and holds
// its lease (extending the visibility timeout). A real worker deletes its message and then exits, so the message is
// gone before the pod is Succeeded; the simulator does the same from the pod's kwok.test/run-for annotation: it
// settles the message FinishMargin before the pod's planned end (delete, or release when the pod is annotated
// kwok.test/outcome: fail), and at the latest when it sees the pod Succeeded or Failed. A pod that finds the queue
// empty is counted as idle: a Job that found no work.
type SQS struct {
	Client    *sqs.Client
	QueueURL  string
	Clientset kubernetes.Interface
	Namespace string
	Selector  string // label selector of the pods to serve, e.g. "kubedispatch.io/scaledjob=etl"
	Log       logr.Logger
	// FinishMargin is how long before the pod's planned end the message is settled; default 300ms.
	FinishMargin time.Duration

	mu      sync.Mutex
	pods    map[string]*podState
	stats   Stats
	deletes map[string]int // message ID -> number of deletes
}

// Stats count what the simulator did.
type Stats struct {
	Received  int // messages taken by pods
	Processed int // messages deleted after their pod succeeded
	Released  int // messages made visible again after their pod failed
	Idle      int // pods that found no message
	Errors    int // SQS calls that failed
}

type podState struct {
	phase     corev1.PodPhase
	messageID string
	receipt   string
	done      bool
	settled   bool // the message was deleted or released (once)
}

const visibility = 30 // seconds; extended while the pod runs

// Stats returns a snapshot of the counters.
func (w *SQS) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// DuplicateDeletes returns the message IDs deleted more than once (should be none).
func (w *SQS) DuplicateDeletes() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ids []string
	for id, n := range w.deletes {
		if n > 1 {
			ids = append(ids, id)
		}
	}
	return ids
}

// Run serves pods until ctx ends.
func (w *SQS) Run(ctx context.Context) error {
	w.mu.Lock()
	w.pods = map[string]*podState{}
	w.deletes = map[string]int{}
	w.mu.Unlock()

	const lanes = 4
	queues := make([]chan *corev1.Pod, lanes)
	var wg sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan *corev1.Pod, 1024)
		wg.Add(1)
		go func(q chan *corev1.Pod) {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case pod := <-q:
					w.handle(ctx, pod)
				}
			}
		}(queues[i])
	}
	// Events of one pod always go to the same lane, so they are handled in order.
	enqueue := func(obj any) {
		pod, ok := obj.(*corev1.Pod)
		if !ok {
			return
		}
		h := fnv.New32a()
		_, _ = h.Write([]byte(pod.Name))
		select {
		case queues[h.Sum32()%lanes] <- pod:
		case <-ctx.Done():
		}
	}
	factory := informers.NewSharedInformerFactoryWithOptions(w.Clientset, 0, informers.WithNamespace(w.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = w.Selector }))
	inf := factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, n any) { enqueue(n) },
	}); err != nil {
		return fmt.Errorf("adding pod handler: %w", err)
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())

	ticker := time.NewTicker(10 * time.Second)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			factory.Shutdown()
			wg.Wait()
			return nil
		case <-ticker.C:
			w.extendLeases(ctx)
		}
	}
}

func (w *SQS) handle(ctx context.Context, pod *corev1.Pod) {
	w.mu.Lock()
	st := w.pods[pod.Name]
	if st == nil {
		st = &podState{}
		w.pods[pod.Name] = st
	}
	if st.done || st.phase == pod.Status.Phase {
		w.mu.Unlock()
		return
	}
	prev := st.phase
	st.phase = pod.Status.Phase
	w.mu.Unlock()

	switch pod.Status.Phase {
	case corev1.PodRunning:
		w.take(ctx, pod.Name, st)
		w.planFinish(ctx, pod, st)
	case corev1.PodSucceeded:
		if prev != corev1.PodRunning {
			// The Running phase was never observed (the informer coalesced it): take the message now.
			w.take(ctx, pod.Name, st)
		}
		w.finish(ctx, st, true)
	case corev1.PodFailed:
		w.finish(ctx, st, false)
	}
}

// planFinish settles the message shortly before the pod's planned end, as a real worker would before exiting.
func (w *SQS) planFinish(ctx context.Context, pod *corev1.Pod, st *podState) {
	runFor := time.Second
	if d, err := time.ParseDuration(pod.Annotations["kwok.test/run-for"]); err == nil {
		runFor = d
	}
	margin := w.FinishMargin
	if margin == 0 {
		margin = 300 * time.Millisecond
	}
	started := time.Now()
	if pod.Status.StartTime != nil {
		started = pod.Status.StartTime.Time
	}
	succeed := pod.Annotations["kwok.test/outcome"] != "fail"
	delay := time.Until(started.Add(runFor - margin))
	time.AfterFunc(max(delay, 0), func() {
		if ctx.Err() == nil {
			w.finish(ctx, st, succeed)
		}
	})
}

func (w *SQS) take(ctx context.Context, pod string, st *podState) {
	out, err := w.Client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(w.QueueURL), MaxNumberOfMessages: 1, VisibilityTimeout: visibility, WaitTimeSeconds: 1,
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.stats.Errors++
		w.Log.Error(err, "Receiving a message", "pod", pod)
		return
	}
	if len(out.Messages) == 0 {
		w.stats.Idle++
		w.Log.V(1).Info("Pod found no message", "pod", pod)
		return
	}
	st.messageID = aws.ToString(out.Messages[0].MessageId)
	st.receipt = aws.ToString(out.Messages[0].ReceiptHandle)
	w.stats.Received++
}

func (w *SQS) finish(ctx context.Context, st *podState, succeeded bool) {
	w.mu.Lock()
	receipt, id := st.receipt, st.messageID
	if st.settled {
		w.mu.Unlock()
		return
	}
	st.settled, st.done = true, true
	w.mu.Unlock()
	if receipt == "" {
		return
	}
	var err error
	if succeeded {
		_, err = w.Client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(w.QueueURL), ReceiptHandle: aws.String(receipt)})
	} else {
		_, err = w.Client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(w.QueueURL), ReceiptHandle: aws.String(receipt), VisibilityTimeout: 0})
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err != nil && !errors.Is(err, context.Canceled):
		w.stats.Errors++
		w.Log.Error(err, "Settling a message", "messageID", id)
	case succeeded:
		w.stats.Processed++
		w.deletes[id]++
	default:
		w.stats.Released++
	}
}

func (w *SQS) extendLeases(ctx context.Context) {
	w.mu.Lock()
	var receipts []string
	for _, st := range w.pods {
		if !st.settled && st.receipt != "" {
			receipts = append(receipts, st.receipt)
		}
	}
	w.mu.Unlock()
	for _, r := range receipts {
		_, _ = w.Client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(w.QueueURL), ReceiptHandle: aws.String(r), VisibilityTimeout: visibility})
	}
}
