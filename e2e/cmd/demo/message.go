package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/cluster"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

const (
	pdfMessages = 30
	pdfFailing  = 3 // every tenth message is made to fail, to show retries and the dead-letter queue
)

// messageDemo is the message-mode part: the PDF example from deploy/examples, where the dispatcher itself
// receives each message, makes one Job for it, deletes it when the Job completes, and dead-letters it after
// maxDeliveries failed Jobs. No worker touches the queue.
func messageDemo(ctx context.Context, root string, c *cluster.Cluster, cl client.Client, kubectl string) error {
	q := framework.NewSQSClient(c.SQSEndpoint)
	queueURL, err := demoQueue(ctx, q, "pdf-requests", map[string]string{"VisibilityTimeout": "30"})
	if err != nil {
		return err
	}
	dlqURL, err := demoQueue(ctx, q, "pdf-requests-dlq", nil)
	if err != nil {
		return err
	}

	step("Message mode. Applying deploy/examples/sqs-message-pdf.yaml, pointed at moto (kwok pods run 3s; messages with attribute outcome=fail make their pods fail)")
	sj, ta, err := loadExample(filepath.Join(root, "deploy", "examples", "sqs-message-pdf.yaml"))
	if err != nil {
		return err
	}
	sj.Namespace, ta.Namespace = namespace, namespace
	md := sj.Spec.Triggers[0].Metadata
	md["queueURL"], md["awsRegion"], md["awsEndpoint"] = queueURL, "us-east-1", c.SQSEndpoint
	if sj.Spec.Dispatch.DeadLetter == nil {
		sj.Spec.Dispatch.DeadLetter = &v1alpha1.DeadLetter{}
	}
	sj.Spec.Dispatch.DeadLetter.QueueURL = dlqURL
	// kwok runs no container: this parameter stands in for a worker that fails on some documents.
	sj.Spec.Dispatch.Parameters = append(sj.Spec.Dispatch.Parameters, v1alpha1.Parameter{
		From: v1alpha1.ParameterSource{Attribute: "outcome"}, To: v1alpha1.ParameterTarget{PodAnnotation: "kwok.test/outcome"}, Default: ptr("ok")})
	if sj.Spec.JobTargetRef.Template.Annotations == nil {
		sj.Spec.JobTargetRef.Template.Annotations = map[string]string{}
	}
	sj.Spec.JobTargetRef.Template.Annotations["kwok.test/run-for"] = "3s"
	for _, obj := range []client.Object{ta, sj} {
		_ = cl.Delete(ctx, obj)
	}
	if err := waitGone(ctx, cl, sj); err != nil {
		return err
	}
	if err := cl.Create(ctx, ta); err != nil {
		return fmt.Errorf("creating TriggerAuthentication: %w", err)
	}
	if err := cl.Create(ctx, sj); err != nil {
		return fmt.Errorf("creating ScaledJob: %w", err)
	}

	step("Sending %d PDF requests (%d of them with attribute outcome=fail)", pdfMessages, pdfFailing)
	for i := range pdfMessages {
		attrs := map[string]sqstypes.MessageAttributeValue{
			"tenant": {DataType: aws.String("String"), StringValue: aws.String(fmt.Sprintf("tenant-%d", i%3))},
		}
		if i%10 == 9 {
			attrs["outcome"] = sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String("fail")}
		}
		body := fmt.Sprintf(`{"customer":{"id":"c-%03d"},"document":"invoice-%03d.pdf","template":"invoice-v2"}`, i%7, i)
		if _, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &queueURL, MessageBody: &body, MessageAttributes: attrs}); err != nil {
			return fmt.Errorf("sending message %d: %w", i, err)
		}
	}
	start := time.Now()

	step("Watching: kubectl get ksj,jobs -n %s -L kubedispatch.io/message  (every 5s until every message is acked or dead-lettered)", namespace)
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var cur v1alpha1.ScaledJob
		if err := cl.Get(ctx, client.ObjectKeyFromObject(sj), &cur); err != nil {
			return fmt.Errorf("reading ScaledJob: %w", err)
		}
		m := cur.Status.Messages
		visible, inflight := counts(ctx, q, queueURL)
		fmt.Printf("\n--- t=%4.0fs  queue: %d waiting, %d held by the dispatcher\n", time.Since(start).Seconds(), visible, inflight)
		show(ctx, kubectl, c.Kubeconfig, "get", "ksj", sj.Name, "-n", namespace)
		show(ctx, kubectl, c.Kubeconfig, "get", "jobs", "-n", namespace, "-l", v1alpha1.LabelScaledJob+"="+sj.Name, "-L", v1alpha1.LabelMessage)
		if m != nil && m.Acked+m.DeadLettered >= pdfMessages && m.Held == 0 {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("message mode did not finish within 10 minutes: see .local/demo-dispatcher.log")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
	step("Done in %.0fs. The ScaledJob:", time.Since(start).Seconds())
	show(ctx, kubectl, c.Kubeconfig, "get", "ksj", sj.Name, "-n", namespace)
	fmt.Println("\nWhich message made which Job, and which attempt (annotations kubedispatch.io/message-id, kubedispatch.io/delivery):")
	show(ctx, kubectl, c.Kubeconfig, "get", "jobs", "-n", namespace, "-l", v1alpha1.LabelScaledJob+"="+sj.Name,
		"-o", `custom-columns=JOB:.metadata.name,MESSAGE-ID:.metadata.annotations.kubedispatch\.io/message-id,ATTEMPT:.metadata.annotations.kubedispatch\.io/delivery,OUTCOME:.metadata.annotations.kubedispatch\.io/message-outcome`)
	fmt.Println("\nThe dead-letter queue (each failed message, after maxDeliveries Jobs, with the reason):")
	out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &dlqURL, MaxNumberOfMessages: 10, MessageAttributeNames: []string{"All"}, VisibilityTimeout: 0})
	if err != nil {
		return fmt.Errorf("reading the dead-letter queue: %w", err)
	}
	for _, m := range out.Messages {
		fmt.Printf("   %s  reason: %s\n", aws.ToString(m.Body), aws.ToString(m.MessageAttributes["kubedispatch-reason"].StringValue))
	}
	fmt.Println("\nEvents of the ScaledJob:")
	show(ctx, kubectl, c.Kubeconfig, "get", "events", "-n", namespace, "--field-selector", "involvedObject.kind=ScaledJob,involvedObject.name="+sj.Name)
	return nil
}

// demoQueue creates (or empties) a moto queue and returns its URL.
func demoQueue(ctx context.Context, q *sqs.Client, name string, attrs map[string]string) (string, error) {
	out, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		return "", fmt.Errorf("creating the SQS queue %s on moto: %w", name, err)
	}
	url := aws.ToString(out.QueueUrl)
	if _, err := q.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: &url}); err != nil {
		return "", fmt.Errorf("emptying the queue %s: %w", name, err)
	}
	fmt.Printf("   queue %s\n", url)
	return url, nil
}
