package realnode

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubedispatch/kubedispatch/e2e/cluster"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// A plain pod on the real node runs the worker image as the nonroot user with a read-only root file system, reads a
// ConfigMap file, succeeds, and its log is read through the API server (the kubectl logs path: apiserver to
// kubelet, each verifying the other's certificate). Its service-account token and kube-root-ca.crt are mounted.
func TestPodRunsAndLogsThroughTheAPI(t *testing.T) {
	f := framework.New(t)
	framework.ImportImages(t)
	body := `{"hello":"real node"}`
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "payload", Namespace: f.Namespace}, Data: map[string]string{"body": body}}
	if _, err := f.Clientset.CoreV1().ConfigMaps(f.Namespace).Create(f.Ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: f.Namespace},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "worker", Image: framework.WorkerImage,
				Env:          []corev1.EnvVar{{Name: "KUBEDISPATCH_MESSAGE_PATH", Value: "/payload/body"}},
				VolumeMounts: []corev1.VolumeMount{{Name: "payload", MountPath: "/payload", ReadOnly: true}},
				SecurityContext: &corev1.SecurityContext{
					RunAsNonRoot: ptr.To(true), ReadOnlyRootFilesystem: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
			Volumes: []corev1.Volume{{Name: "payload", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "payload"}},
			}}},
		},
	}
	framework.OnRealNode(&pod.Spec)
	start := time.Now()
	if _, err := f.Clientset.CoreV1().Pods(f.Namespace).Create(f.Ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitPodDone(f, pod.Name, 2*time.Minute)
	t.Logf("pod finished %s after creation", time.Since(start).Round(100*time.Millisecond))
	if got.Spec.NodeName != cluster.RealNodeName {
		t.Errorf("pod ran on %q, want %q", got.Spec.NodeName, cluster.RealNodeName)
	}
	if got.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("pod phase %s, want Succeeded; status: %+v", got.Status.Phase, got.Status.ContainerStatuses)
	}
	sum := sha256.Sum256([]byte(body))
	log := podLog(f, pod.Name)
	if want := fmt.Sprintf("sha256=%s bytes=%d", hex.EncodeToString(sum[:]), len(body)); !strings.Contains(log, want) {
		t.Errorf("pod log lacks %q:\n%s", want, log)
	}
	term := got.Status.ContainerStatuses[0].State.Terminated
	if term == nil || !strings.HasPrefix(term.Message, "result=ok") {
		t.Errorf("termination message = %+v, want the worker's result line", term)
	}
	var projected bool
	for _, v := range got.Spec.Volumes {
		projected = projected || (v.Projected != nil && strings.HasPrefix(v.Name, "kube-api-access-"))
	}
	if !projected {
		t.Errorf("pod has no service-account token volume: %+v", got.Spec.Volumes)
	}
}

// A pod that does not select the real node stays on kwok, and one that selects it without tolerating its taint
// is not scheduled at all.
func TestOnlySelectingTolerantPodsLandOnTheRealNode(t *testing.T) {
	f := framework.New(t)
	mk := func(name string, edit func(*corev1.PodSpec)) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.Namespace}, Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "c", Image: "example.com/nothing:1"}},
		}}
		edit(&p.Spec)
		if _, err := f.Clientset.CoreV1().Pods(f.Namespace).Create(f.Ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mk("plain", func(*corev1.PodSpec) {})
	mk("intolerant", func(s *corev1.PodSpec) { s.NodeSelector = cluster.RealNodeSelector() })
	f.Eventually("pod plain on the kwok node", time.Minute, func() (bool, error) {
		p, err := f.Clientset.CoreV1().Pods(f.Namespace).Get(f.Ctx, "plain", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return p.Spec.NodeName == cluster.NodeName, fmt.Errorf("on node %q", p.Spec.NodeName)
	})
	f.Eventually("pod intolerant reported unschedulable", time.Minute, func() (bool, error) {
		p, err := f.Clientset.CoreV1().Pods(f.Namespace).Get(f.Ctx, "intolerant", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if p.Spec.NodeName != "" {
			t.Fatalf("pod intolerant scheduled on %s despite the taint", p.Spec.NodeName)
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				return true, nil
			}
		}
		return false, fmt.Errorf("conditions %+v", p.Status.Conditions)
	})
}

// waitPodDone waits for the pod to reach Succeeded or Failed and returns it.
func waitPodDone(f *framework.F, name string, timeout time.Duration) *corev1.Pod {
	f.T.Helper()
	var pod *corev1.Pod
	f.Eventually("pod "+name+" to finish", timeout, func() (bool, error) {
		p, err := f.Clientset.CoreV1().Pods(f.Namespace).Get(f.Ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pod = p
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed, fmt.Errorf("phase %s", p.Status.Phase)
	})
	return pod
}

// podLog reads a pod's log through the API server (GET pods/log, which the apiserver proxies to the kubelet).
func podLog(f *framework.F, name string) string {
	f.T.Helper()
	b, err := f.Clientset.CoreV1().Pods(f.Namespace).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(f.Ctx)
	if err != nil {
		f.T.Fatalf("reading the log of pod %s through the API server: %v", name, err)
	}
	return string(b)
}
