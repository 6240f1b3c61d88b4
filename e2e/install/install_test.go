package install

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/deploy"
	"github.com/kubedispatch/kubedispatch/e2e/cluster"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// The namespace and ServiceAccount of deploy/ (and of the chart with release "kubedispatch").
const (
	deployNamespace = deploy.Namespace
	dispatcherSA    = deploy.ServiceAccount
)

// install is a dispatcher installed for a test.
type install struct {
	namespace      string // where the dispatcher runs
	serviceAccount string
	pod            *corev1.Pod // the Ready dispatcher pod
}

// TestKustomizeInstall: `kubectl apply -k` of deploy/overlays/local (with this stack's ports) runs the dispatcher on
// the real node as ServiceAccount kubedispatch-dispatcher with the RBAC of deploy/; its pod becomes Ready through
// its probes, runs as non-root with a read-only root file system, and a ScaledJob dispatches SQS messages to Jobs.
func TestKustomizeInstall(t *testing.T) {
	f := framework.New(t)
	in := installKustomize(t, f)
	checkHardened(t, f, in.pod)
	dispatches(t, f, "kustomize")
	checkLeaderLease(t, f, in)
	checkNothingForbidden(t, f, in.pod)
}

// TestHelmInstall: `helm install` of deploy/helm/kubedispatch with the values for the local stack and rbac.mode
// namespaced (the ScaledJob's namespace only): the same checks as TestKustomizeInstall, with the chart's RBAC.
func TestHelmInstall(t *testing.T) {
	f := framework.New(t)
	in := installHelm(t, f, map[string]any{
		"watchNamespaces": []any{f.Namespace},
		"rbac":            map[string]any{"mode": "namespaced"},
	})
	checkHardened(t, f, in.pod)
	dispatches(t, f, "helm")
	checkLeaderLease(t, f, in)
	checkNothingForbidden(t, f, in.pod)
}

// installKustomize applies deploy/overlays/local, moved to this stack's API server port and free host ports, with
// `kubectl apply -k`, waits for the dispatcher pod to be Ready on the real node, and uninstalls it (but the CRDs)
// when the test ends.
func installKustomize(t *testing.T, f *framework.F) install {
	t.Helper()
	framework.ImportImages(t)
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	hostPorts, err := cluster.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := deploy.WriteLocalOverlay(dir, filepath.Join(root, "deploy"), deploy.LocalSettings{
		APIServerPort: apiServerPort(t), ProbePort: hostPorts[0], MetricsPort: hostPorts[1],
	}); err != nil {
		t.Fatal(err)
	}
	uninstall := uninstallFile(t, dir)
	t.Cleanup(func() {
		// --wait: the next install reuses the namespace, the cluster-wide names and the host ports.
		if out, err := kubectl("delete", "-f", uninstall, "--ignore-not-found", "--wait", "--timeout=2m"); err != nil {
			t.Errorf("kubectl delete: %v\n%s", err, out)
		}
	})
	if out, err := kubectl("apply", "-k", dir); err != nil {
		t.Fatalf("kubectl apply -k %s: %v\n%s", dir, err, out)
	}
	waitCRDs(t, f)
	in := install{namespace: deployNamespace, serviceAccount: dispatcherSA}
	in.pod = waitDispatcherReady(t, f, deployNamespace, "app.kubernetes.io/name=kubedispatch,app.kubernetes.io/component=dispatcher")
	return in
}

// installHelm runs `helm install` of deploy/helm/kubedispatch with the local stack's values, and values over them,
// into a new namespace, waits for the dispatcher pod to be Ready on the real node, and uninstalls the release when
// the test ends.
func installHelm(t *testing.T, f *framework.F, values map[string]any) install {
	t.Helper()
	framework.ImportImages(t)
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	helm, err := deploy.EnsureHelm(root)
	if err != nil {
		t.Fatal(err)
	}
	hostPorts, err := cluster.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	var extraEnv []any
	for _, e := range framework.Cluster().InClusterAPIEnv() {
		extraEnv = append(extraEnv, map[string]any{"name": e.Name, "value": e.Value})
	}
	var tolerations []any
	for _, tol := range cluster.RealNodeTolerations() {
		tolerations = append(tolerations, map[string]any{"key": tol.Key, "operator": string(tol.Operator), "value": tol.Value, "effect": string(tol.Effect)})
	}
	all := map[string]any{
		"image":            map[string]any{"tag": "dev", "pullPolicy": "Never"},
		"hostNetwork":      true,
		"nodeSelector":     cluster.RealNodeSelector(),
		"tolerations":      tolerations,
		"extraEnv":         extraEnv,
		"allowedEndpoints": []any{"127.0.0.1:*", "localhost:*"},
		"probes":           map[string]any{"port": hostPorts[0]},
		"metrics":          map[string]any{"port": hostPorts[1]},
	}
	for k, v := range values {
		all[k] = v
	}
	// helm splits --values at commas: keep them out of the path (t.TempDir takes the test's name).
	valuesDir, err := os.MkdirTemp("", "kubedispatch-values-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(valuesDir) })
	valuesFile := filepath.Join(valuesDir, "values.yaml")
	if err := deploy.WriteValues(valuesFile, all); err != nil {
		t.Fatal(err)
	}
	ns := "kd-helm-" + f.Namespace[strings.LastIndex(f.Namespace, "-")+1:]
	const release = "e2e"
	t.Cleanup(func() {
		if out, err := run(helm, "uninstall", release, "--namespace", ns, "--wait", "--timeout=2m"); err != nil {
			t.Errorf("helm uninstall: %v\n%s", err, out)
		}
		_ = f.Clientset.CoreV1().Namespaces().Delete(f.Ctx, ns, metav1.DeleteOptions{})
	})
	chart := filepath.Join(root, "deploy", "helm", "kubedispatch")
	if out, err := run(helm, "install", release, chart, "--namespace", ns, "--create-namespace", "--values", valuesFile); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	waitCRDs(t, f)
	in := install{namespace: ns, serviceAccount: release + "-kubedispatch-dispatcher"}
	in.pod = waitDispatcherReady(t, f, ns, "app.kubernetes.io/instance="+release+",app.kubernetes.io/component=dispatcher")
	return in
}

// uninstallFile writes the objects of the kustomization dir but its CRDs into a file for `kubectl delete -f`, and
// returns its path. Deleting the CRDs would take every ScaledJob of the stack along, and a CRD being deleted blocks
// the next install's; `kubectl delete -k dir` would delete them.
func uninstallFile(t *testing.T, dir string) string {
	t.Helper()
	objs, err := deploy.Render(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			continue
		}
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	path := filepath.Join(t.TempDir(), "uninstall.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// apiServerPort is the port of the stack's API server (on 127.0.0.1).
func apiServerPort(t *testing.T) int {
	t.Helper()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(framework.Cluster().Server, "https://"))
	if err != nil {
		t.Fatalf("reading the API server port of %s: %v", framework.Cluster().Server, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("reading the API server port of %s: %v", framework.Cluster().Server, err)
	}
	return p
}

// kubectl runs the stack's kubectl (KUBECONFIG is the stack's, exported by framework.Main).
func kubectl(args ...string) (string, error) {
	return run(filepath.Join(framework.Cluster().KubectlDir, "kubectl"), args...)
}

func run(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

// waitCRDs waits until the API server serves ScaledJobs (the install just created the CRDs).
func waitCRDs(t *testing.T, f *framework.F) {
	t.Helper()
	f.Eventually("the ScaledJob API", time.Minute, func() (bool, error) {
		err := f.Client.List(f.Ctx, &v1alpha1.ScaledJobList{})
		return err == nil, err
	})
}

// waitDispatcherReady waits for the one dispatcher pod matching selector in namespace to be Ready on the real node,
// and returns it. Failing, it shows the pod's state, events and log.
func waitDispatcherReady(t *testing.T, f *framework.F, namespace, selector string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	var last error
	err := wait.PollUntilContextTimeout(f.Ctx, 500*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := f.Clientset.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			last = err
			return false, nil
		}
		if len(pods.Items) != 1 {
			last = fmt.Errorf("%d pods", len(pods.Items))
			return false, nil
		}
		pod = &pods.Items[0]
		return podReady(pod), nil
	})
	if err != nil {
		t.Fatalf("waiting 3m for a Ready dispatcher pod in %s (%s): %v (last: %v); %s", namespace, selector, err, last, describe(f, namespace, pod))
	}
	if pod.Spec.NodeName != cluster.RealNodeName {
		t.Fatalf("dispatcher pod %s on node %q, want %s", pod.Name, pod.Spec.NodeName, cluster.RealNodeName)
	}
	return pod
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// describe summarizes why a pod is not Ready: its phase and container states, the namespace's events, its log.
func describe(f *framework.F, namespace string, pod *corev1.Pod) string {
	var b strings.Builder
	if pod == nil {
		b.WriteString("no pod")
	} else {
		fmt.Fprintf(&b, "pod %s phase %s node %q", pod.Name, pod.Status.Phase, pod.Spec.NodeName)
		for _, cs := range pod.Status.ContainerStatuses {
			fmt.Fprintf(&b, "; container %s ready=%v restarts=%d state=%+v last=%+v", cs.Name, cs.Ready, cs.RestartCount, cs.State, cs.LastTerminationState)
		}
		if logs, err := f.Clientset.CoreV1().Pods(namespace).GetLogs(pod.Name, &corev1.PodLogOptions{TailLines: ptr.To[int64](30)}).DoRaw(f.Ctx); err == nil {
			fmt.Fprintf(&b, "\nlog:\n%s", logs)
		}
	}
	if evs, err := f.Clientset.CoreV1().Events(namespace).List(f.Ctx, metav1.ListOptions{}); err == nil {
		b.WriteString("\nevents:")
		for _, e := range evs.Items {
			fmt.Fprintf(&b, "\n  %s %s/%s: %s", e.Reason, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Message)
		}
	}
	return b.String()
}

// checkHardened checks what the container runtime actually did with the dispatcher's container, not only its spec:
// in containerd's OCI spec the process runs as 65532:65532 with a read-only root; and the running process (read
// from /proc on the host) has that uid, no capabilities, no_new_privs, a seccomp filter, and / mounted read-only.
func checkHardened(t *testing.T, f *framework.F, pod *corev1.Pod) {
	t.Helper()
	if len(pod.Status.ContainerStatuses) != 1 {
		t.Fatalf("pod %s has %d container statuses, want 1", pod.Name, len(pod.Status.ContainerStatuses))
	}
	id, ok := strings.CutPrefix(pod.Status.ContainerStatuses[0].ContainerID, "containerd://")
	if !ok {
		t.Fatalf("container ID %q: want containerd://...", pod.Status.ContainerStatuses[0].ContainerID)
	}
	rn := framework.Cluster().RealNode
	ctr := func(args ...string) string {
		t.Helper()
		out, err := run(rn.Ctr, append([]string{"--address", rn.ContainerdAddress, "--namespace", "k8s.io"}, args...)...)
		if err != nil {
			t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	var info struct {
		Spec struct {
			Process struct {
				User struct {
					UID uint32 `json:"uid"`
					GID uint32 `json:"gid"`
				} `json:"user"`
				NoNewPrivileges bool `json:"noNewPrivileges"`
			} `json:"process"`
			Root struct {
				Readonly bool `json:"readonly"`
			} `json:"root"`
		} `json:"Spec"`
	}
	if err := json.Unmarshal([]byte(ctr("containers", "info", id)), &info); err != nil {
		t.Fatalf("decoding ctr containers info %s: %v", id, err)
	}
	s := info.Spec
	if s.Process.User.UID != 65532 || s.Process.User.GID != 65532 || !s.Root.Readonly || !s.Process.NoNewPrivileges {
		t.Errorf("OCI spec of the dispatcher container: uid %d gid %d, read-only root %v, noNewPrivileges %v; want 65532, 65532, true, true",
			s.Process.User.UID, s.Process.User.GID, s.Root.Readonly, s.Process.NoNewPrivileges)
	}

	pid := ""
	for _, line := range strings.Split(ctr("tasks", "ls"), "\n") {
		if fields := strings.Fields(line); len(fields) >= 3 && fields[0] == id && fields[2] == "RUNNING" {
			pid = fields[1]
		}
	}
	if pid == "" {
		t.Fatalf("no running task %s in ctr tasks ls", id)
	}
	status, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
	if err != nil {
		t.Fatalf("reading the dispatcher process's status: %v", err)
	}
	want := map[string]*regexp.Regexp{
		"Uid":        regexp.MustCompile(`^65532\s+65532\s+65532\s+65532$`),
		"Gid":        regexp.MustCompile(`^65532\s+65532\s+65532\s+65532$`),
		"CapEff":     regexp.MustCompile(`^0+$`),
		"CapPrm":     regexp.MustCompile(`^0+$`),
		"NoNewPrivs": regexp.MustCompile(`^1$`),
		"Seccomp":    regexp.MustCompile(`^2$`), // 2: a filter (RuntimeDefault)
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		if re, ok := want[k]; ok {
			if v = strings.TrimSpace(v); !re.MatchString(v) {
				t.Errorf("dispatcher process %s: %s %q, want %s", pid, k, v, re)
			}
			delete(want, k)
		}
	}
	for k := range want {
		t.Errorf("dispatcher process %s: no %s line in /proc/%s/status", pid, k, pid)
	}
	mounts, err := os.ReadFile(filepath.Join("/proc", pid, "mounts"))
	if err != nil {
		t.Fatalf("reading the dispatcher process's mounts: %v", err)
	}
	rootRO := false
	for _, line := range strings.Split(string(mounts), "\n") {
		if fields := strings.Fields(line); len(fields) >= 4 && fields[1] == "/" {
			rootRO = strings.HasPrefix(fields[3], "ro,") || fields[3] == "ro" // the last / mount is the one in effect
		}
	}
	if !rootRO {
		t.Errorf("the dispatcher's root file system is not mounted read-only:\n%s", mounts)
	}
}

// dispatches creates a count-mode ScaledJob on an SQS queue of moto (queueLength 1, credentials from a
// TriggerAuthentication), sends three messages and waits for three Jobs, with the ScaledJob Ready. The Jobs' pods
// run on the kwok node.
func dispatches(t *testing.T, f *framework.F, name string) {
	t.Helper()
	queue := f.CreateQueue(name, nil)
	sj := framework.NewScaledJob(f, name).SQS(queue, 1).Max(5).RunFor("10m")
	sj.ScaledJob.Spec.Triggers[0].AuthenticationRef = f.AWSKeysAuth()
	sj.Create()
	f.SendMessages(queue, 3, name)
	f.Eventually("3 Jobs of "+name, 2*time.Minute, func() (bool, error) {
		n := len(f.JobsOf(name))
		return n == 3, fmt.Errorf("%d Jobs; ScaledJob status %+v", n, f.ScaledJob(name).Status.Conditions)
	})
	f.WaitReady(name, metav1.ConditionTrue)
}

// checkLeaderLease: the dispatcher holds the leader-election Lease in its namespace and renews it. (Its holder
// identity is the pod's hostname, which hostNetwork makes the node's, plus a random suffix: it does not name the pod.)
func checkLeaderLease(t *testing.T, f *framework.F, in install) {
	t.Helper()
	f.Eventually("the leader Lease renewed in "+in.namespace, time.Minute, func() (bool, error) {
		lease, err := f.Clientset.CoordinationV1().Leases(in.namespace).Get(f.Ctx, "dispatcher.kubedispatch.io", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		renewed := lease.Spec.RenewTime
		if ptr.Deref(lease.Spec.HolderIdentity, "") == "" || renewed == nil || !renewed.After(in.pod.CreationTimestamp.Time) {
			return false, fmt.Errorf("holder %q renewed %v, pod created %v", ptr.Deref(lease.Spec.HolderIdentity, ""), renewed, in.pod.CreationTimestamp)
		}
		return true, nil
	})
}

// checkNothingForbidden: the API server refused the dispatcher nothing (its log, read through the API server).
func checkNothingForbidden(t *testing.T, f *framework.F, pod *corev1.Pod) {
	t.Helper()
	logs, err := f.Clientset.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(f.Ctx)
	if err != nil {
		t.Fatalf("reading the dispatcher's log: %v", err)
	}
	for _, line := range strings.Split(string(logs), "\n") {
		if strings.Contains(strings.ToLower(line), "forbidden") {
			t.Errorf("the dispatcher was refused a request: %s", line)
		}
	}
}
