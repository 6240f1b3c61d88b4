package main

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/cluster"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

const realMessages = 5

// realWorkersDemo is the part with real containers: the example worker image (examples/worker) runs on the stack's
// real node (kubelet + containerd); in message mode each Job's container reads its own message from the mounted
// payload file, prints its SHA-256 and exits 0. The demo prints each Job's log.
func realWorkersDemo(ctx context.Context, c *cluster.Cluster, cl client.Client, kubectl string) error {
	if c.RealNode == nil {
		step("Real workers: skipped (this stack has no real node; start it with make cluster-up REAL_NODE=1, or let make demo start one)")
		return nil
	}
	step("Real workers. Building the example worker image without Docker (examples/worker, cached) and importing it into the real node's containerd")
	tar, err := framework.BuildImage("./examples/worker", "worker", framework.WorkerImage, nil)
	if err != nil {
		return err
	}
	if err := c.ImportImage(ctx, tar); err != nil {
		return err
	}
	q := framework.NewSQSClient(c.SQSEndpoint)
	queueURL, err := demoQueue(ctx, q, "reports", map[string]string{"VisibilityTimeout": "30"})
	if err != nil {
		return err
	}
	// moto takes any key; a custom endpoint gets only credentials of the ScaledJob's own namespace.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "reports-sqs-keys", Namespace: namespace},
		StringData: map[string]string{"id": "demo", "secret": "demo"}}
	ta := &v1alpha1.TriggerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: "reports-sqs-keys", Namespace: namespace},
		Spec: v1alpha1.TriggerAuthenticationSpec{SecretTargetRef: []v1alpha1.SecretTargetRef{
			{Parameter: "awsAccessKeyID", Name: secret.Name, Key: "id"}, {Parameter: "awsSecretAccessKey", Name: secret.Name, Key: "secret"}}}}
	for _, obj := range []client.Object{secret, ta} {
		if err := cl.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s: %w", obj.GetName(), err)
		}
	}
	sj := &v1alpha1.ScaledJob{
		ObjectMeta: metav1.ObjectMeta{Name: "reports", Namespace: namespace},
		Spec: v1alpha1.ScaledJobSpec{
			MaxReplicaCount: ptr(int32(realMessages)),
			Dispatch:        &v1alpha1.Dispatch{Mode: v1alpha1.ModeMessage},
			Triggers: []v1alpha1.ScaleTrigger{{Type: "aws-sqs-queue", Name: "reports", Metadata: map[string]string{
				"queueURL": queueURL, "awsRegion": "us-east-1", "awsEndpoint": c.SQSEndpoint, "queueLength": "1"},
				AuthenticationRef: &v1alpha1.AuthenticationRef{Name: ta.Name}}},
			JobTargetRef: batchv1.JobSpec{BackoffLimit: ptr(int32(0)), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy:                corev1.RestartPolicyNever,
				AutomountServiceAccountToken: ptr(false),
				NodeSelector:                 cluster.RealNodeSelector(),
				Tolerations:                  cluster.RealNodeTolerations(),
				Containers: []corev1.Container{{Name: "worker", Image: framework.WorkerImage, ImagePullPolicy: corev1.PullNever,
					SecurityContext: &corev1.SecurityContext{RunAsNonRoot: ptr(true), ReadOnlyRootFilesystem: ptr(true),
						AllowPrivilegeEscalation: ptr(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
			}}},
		},
	}
	_ = cl.Delete(ctx, sj)
	if err := waitGone(ctx, cl, sj); err != nil {
		return err
	}
	if err := cl.Create(ctx, sj); err != nil {
		return fmt.Errorf("creating ScaledJob: %w", err)
	}
	step("Sending %d report requests; each becomes one Job whose container reads its own message", realMessages)
	for i := range realMessages {
		body := fmt.Sprintf(`{"report":"monthly-%02d","customer":"c-%03d"}`, i+1, i*11)
		if _, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &queueURL, MessageBody: &body}); err != nil {
			return fmt.Errorf("sending messages: %w", err)
		}
		fmt.Printf("   sent %s\n", body)
	}
	deadline := time.Now().Add(3 * time.Minute)
	var jobs batchv1.JobList
	for {
		if err := cl.List(ctx, &jobs, client.InNamespace(namespace), client.MatchingLabels{v1alpha1.LabelScaledJob: sj.Name}); err != nil {
			return fmt.Errorf("listing Jobs: %w", err)
		}
		done := 0
		for _, j := range jobs.Items {
			if j.Status.Succeeded > 0 {
				done++
			}
		}
		if done >= realMessages {
			break
		}
		if time.Now().After(deadline) {
			show(ctx, kubectl, c.Kubeconfig, "get", "jobs,pods", "-n", namespace, "-l", v1alpha1.LabelScaledJob+"="+sj.Name, "-o", "wide")
			return fmt.Errorf("only %d of %d real workers succeeded within 3 minutes: see .local/stack/logs", done, realMessages)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	show(ctx, kubectl, c.Kubeconfig, "get", "jobs,pods", "-n", namespace, "-l", v1alpha1.LabelScaledJob+"="+sj.Name, "-o", "wide")
	for _, j := range jobs.Items {
		fmt.Printf("\n   $ kubectl logs -n %s job/%s\n", namespace, j.Name)
		show(ctx, kubectl, c.Kubeconfig, "logs", "-n", namespace, "job/"+j.Name)
	}
	visible, inflight := counts(ctx, q, queueURL)
	step("Real workers done: %d containers each read their own message and exited 0; the queue holds %d waiting and %d in flight (each message was deleted when its Job completed)",
		len(jobs.Items), visible, inflight)
	return nil
}
