package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubedispatch/kubedispatch/internal/ociimage"
)

const (
	// RealNodeName is the name of the real node (Options.RealNode).
	RealNodeName = "real-node"
	// RealNodeLabelKey is the key of the real node's label and of its taint (value RealNodeLabelValue, effect
	// NoSchedule): only pods that select the label and tolerate the taint run for real; every other pod stays on the
	// kwok node. See RealNodeSelector and RealNodeTolerations.
	RealNodeLabelKey = "kubedispatch.io/node"
	// RealNodeLabelValue is the value of the real node's label and taint.
	RealNodeLabelValue = "real"
	// PauseImage is the sandbox image of the real node, built from e2e/cluster/pause and imported at start.
	PauseImage = "localhost/kubedispatch/pause:dev"
	// cniDirs are where Debian's containernetworking-plugins (first) or upstream tarballs put the CNI plugins.
	cniDebianDir = "/usr/lib/cni"
	cniOptDir    = "/opt/cni/bin"
)

// RealNodeSelector is the node selector of pods that must run on the real node.
func RealNodeSelector() map[string]string {
	return map[string]string{RealNodeLabelKey: RealNodeLabelValue}
}

// RealNodeTolerations tolerate the real node's taint.
func RealNodeTolerations() []corev1.Toleration {
	return []corev1.Toleration{{
		Key: RealNodeLabelKey, Operator: corev1.TolerationOpEqual, Value: RealNodeLabelValue, Effect: corev1.TaintEffectNoSchedule,
	}}
}

// RealNode is the state of a stack's real node: a kubelet with its own containerd (and runc, and the CNI bridge
// plugin), all under the stack's directory. It is saved in state.json so that Stop from another process (make
// cluster-down) can clean up what the processes leave behind: containers, mounts, cgroups and the bridge.
type RealNode struct {
	// ContainerdAddress is containerd's gRPC socket (`ctr -a <it> -n k8s.io ...`).
	ContainerdAddress string `json:"containerdAddress"`
	// Ctr is the path of the ctr client.
	Ctr string `json:"ctr"`
	// KubeletRoot is the kubelet's --root-dir (pod volumes are mounted below it).
	KubeletRoot string `json:"kubeletRoot"`
	// KubeletPort serves the kubelet API on NodeIP (logs, exec); KubeletHealthzPort serves /healthz on 127.0.0.1.
	KubeletPort        int `json:"kubeletPort"`
	KubeletHealthzPort int `json:"kubeletHealthzPort"`
	// CgroupRoot is the kubelet's cgroupRoot: every pod's cgroup lives below it, in each v1 hierarchy.
	CgroupRoot string `json:"cgroupRoot"`
	// Bridge is the CNI bridge of the node's pod network Subnet; NodeIP, its first address, is the node's
	// InternalIP and the gateway pods (not on hostNetwork) reach the host on.
	Bridge string `json:"bridge"`
	Subnet string `json:"subnet"`
	NodeIP string `json:"nodeIP"`
}

// InClusterAPIEnv are the variables a hostNetwork pod on the real node sets to reach the API server with
// rest.InClusterConfig: the apiserver listens on 127.0.0.1 only and the stack runs no kube-proxy, so the kubernetes
// Service's ClusterIP (which the kubelet puts in KUBERNETES_SERVICE_HOST) leads nowhere. Variables set in the
// container spec take precedence over the kubelet's.
func (c *Cluster) InClusterAPIEnv() []corev1.EnvVar {
	host, port := "127.0.0.1", "443"
	if h, p, err := net.SplitHostPort(strings.TrimPrefix(c.Server, "https://")); err == nil {
		host, port = h, p
	}
	return []corev1.EnvVar{
		{Name: "KUBERNETES_SERVICE_HOST", Value: host},
		{Name: "KUBERNETES_SERVICE_PORT", Value: port},
		{Name: "KUBERNETES_SERVICE_PORT_HTTPS", Value: port},
	}
}

// ImportImage imports an image archive (`docker save` layout or an OCI layout tarball, such as those of `make
// image`) into the real node's containerd, in the k8s.io namespace the kubelet uses. Pods then run it with
// imagePullPolicy IfNotPresent or Never (no registry is reachable).
func (c *Cluster) ImportImage(ctx context.Context, archivePath string) error {
	if c.RealNode == nil {
		return fmt.Errorf("importing image %s: the stack has no real node (Options.RealNode)", archivePath)
	}
	out, err := exec.CommandContext(ctx, c.RealNode.Ctr, "--address", c.RealNode.ContainerdAddress, "--namespace", "k8s.io",
		"images", "import", archivePath).CombinedOutput()
	if err != nil {
		return fmt.Errorf("importing image %s into containerd: %w: %s", archivePath, err, bytes.TrimSpace(out))
	}
	return nil
}

// realNodeTools are the host programs the real node needs (hack/prereqs-realnode.sh installs them).
type realNodeTools struct {
	containerd, ctr, cniDir string
}

func findRealNodeTools() (realNodeTools, error) {
	var t realNodeTools
	var missing []string
	for _, n := range []struct {
		name string
		dst  *string
	}{{"containerd", &t.containerd}, {"ctr", &t.ctr}} {
		p, err := exec.LookPath(n.name)
		if err != nil {
			missing = append(missing, n.name)
			continue
		}
		*n.dst = p
	}
	for _, n := range []string{"runc", "containerd-shim-runc-v2", "ip"} {
		if _, err := lookPathSbin(n); err != nil {
			missing = append(missing, n)
		}
	}
	for _, d := range []string{cniDebianDir, cniOptDir} {
		if _, err := os.Stat(filepath.Join(d, "bridge")); err == nil {
			t.cniDir = d
			break
		}
	}
	if t.cniDir == "" {
		missing = append(missing, "CNI plugins (bridge, host-local, loopback)")
	}
	if len(missing) > 0 {
		return t, fmt.Errorf("the real node needs %s: run `bash hack/prereqs-realnode.sh` (as root, with apt-get) "+
			"or install the Debian packages containerd, runc, containernetworking-plugins and iptables", strings.Join(missing, ", "))
	}
	if os.Geteuid() != 0 {
		return t, errors.New("the real node needs root: the kubelet and containerd mount file systems and create cgroups")
	}
	return t, nil
}

// sbinPath is PATH for containerd and the kubelet: they look up runc, the shim, mount and iptables on it, and
// Debian keeps some in /usr/sbin, which a user's PATH may lack.
const sbinPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func lookPathSbin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range strings.Split(strings.TrimPrefix(sbinPath, "PATH="), ":") {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("finding %s: not on PATH", name)
}

// prepareRealNode runs before the apiserver starts: it checks the host tools, picks the node's network and writes
// the PKI. It returns the extra flags of the apiserver and the controller-manager.
func (c *Cluster) prepareRealNode(kubelet string, ports []int) (tools realNodeTools, pki *realPKI, apiArgs, kcmArgs []string, err error) {
	if kubelet == "" {
		return tools, nil, nil, nil, errors.New("kubelet: no binary given (run hack/build-binaries.sh)")
	}
	if _, err := os.Stat(kubelet); err != nil {
		return tools, nil, nil, nil, fmt.Errorf("kubelet: binary %s missing (run hack/build-binaries.sh): %w", kubelet, err)
	}
	tools, err = findRealNodeTools()
	if err != nil {
		return tools, nil, nil, nil, err
	}
	root := filepath.Join(c.Dir, "realnode")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return tools, nil, nil, nil, fmt.Errorf("creating real-node dir: %w", err)
	}
	sock := filepath.Join(root, "containerd.sock")
	if len(sock) > 100 {
		return tools, nil, nil, nil, fmt.Errorf("preparing the real node: containerd's socket path %s is longer than a unix socket allows; use a shorter stack dir", sock)
	}
	suffix := randHex(3)
	subnet, gateway, err := pickSubnet()
	if err != nil {
		return tools, nil, nil, nil, err
	}
	c.RealNode = &RealNode{
		ContainerdAddress:  sock,
		Ctr:                tools.ctr,
		KubeletRoot:        filepath.Join(root, "kubelet"),
		KubeletPort:        ports[0],
		KubeletHealthzPort: ports[1],
		CgroupRoot:         "/kubedispatch-" + suffix,
		Bridge:             "kd" + suffix,
		Subnet:             subnet.String(),
		NodeIP:             gateway.String(),
	}
	pki, err = writeRealPKI(filepath.Join(c.Dir, "pki", "realnode"), gateway)
	if err != nil {
		return tools, nil, nil, nil, err
	}
	apiArgs = []string{
		"--tls-cert-file=" + pki.APIServerCert, "--tls-private-key-file=" + pki.APIServerKey,
		"--kubelet-client-certificate=" + pki.KubeletClientCert, "--kubelet-client-key=" + pki.KubeletClientKey,
		"--kubelet-certificate-authority=" + pki.CA,
		// The node's Hostname address (real-node) resolves nowhere; its InternalIP is the bridge address.
		"--kubelet-preferred-address-types=InternalIP",
	}
	kcmArgs = []string{"--root-ca-file=" + pki.CA}
	return tools, pki, apiArgs, kcmArgs, nil
}

// realNodeControllers is added to the controller-manager's --controllers with a real node: pods' service-account
// token volumes carry the kube-root-ca.crt ConfigMap, which the kubelet must find to start them, and the installed
// dispatcher is a Deployment, which needs the deployment and replica-set controllers to get its pod.
const realNodeControllers = ",root-ca-cert-publisher,deployment-controller,replicaset-controller"

// startRealNode starts containerd, imports the pause image, starts the kubelet and waits until the node is Ready.
func (c *Cluster) startRealNode(ctx context.Context, opts Options, tools realNodeTools, pki *realPKI, progress io.Writer, watched []*process) error {
	rn := c.RealNode
	root := filepath.Dir(rn.ContainerdAddress)
	logs := filepath.Join(c.Dir, "logs")
	for _, d := range []string{"containerd/root", "containerd/state", "cni/net.d", "cni/ipam", "kubelet", "pod-logs"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return fmt.Errorf("creating real-node dir: %w", err)
		}
	}
	if err := setupBridge(rn); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "cni", "net.d", "10-kubedispatch.conflist"), cniConfig(rn, filepath.Join(root, "cni", "ipam")), 0o644); err != nil {
		return fmt.Errorf("writing CNI config: %w", err)
	}
	cfg := filepath.Join(root, "containerd.toml")
	if err := os.WriteFile(cfg, containerdConfig(root, tools.cniDir), 0o644); err != nil {
		return fmt.Errorf("writing containerd config: %w", err)
	}
	fmt.Fprintf(progress, "starting containerd for the real node (%s)\n", rn.ContainerdAddress)
	ctrd, err := c.launch("containerd", filepath.Join(logs, "containerd.log"), []string{sbinPath}, tools.containerd, "--config", cfg)
	if err != nil {
		return err
	}
	if err := poll(ctx, []*process{ctrd}, "containerd at "+rn.ContainerdAddress, func() bool {
		return exec.CommandContext(ctx, rn.Ctr, "--address", rn.ContainerdAddress, "version").Run() == nil
	}); err != nil {
		return err
	}
	fmt.Fprintln(progress, "building and importing the pause image")
	pauseTar, err := buildPauseImage(ctx, c.Dir)
	if err != nil {
		return err
	}
	if err := c.ImportImage(ctx, pauseTar); err != nil {
		return err
	}
	if err := makeCgroupRoot(rn.CgroupRoot); err != nil {
		return err
	}
	if err := saveSysctls(rn); err != nil {
		return err
	}
	kubeconfig := filepath.Join(root, "kubelet.kubeconfig")
	kcfg := clientcmdConfig(c.Server, c.Token)
	for _, cl := range kcfg.Clusters {
		cl.InsecureSkipTLSVerify = false
		cl.CertificateAuthority = pki.CA
	}
	if err := clientcmd.WriteToFile(*kcfg, kubeconfig); err != nil {
		return fmt.Errorf("writing kubelet kubeconfig: %w", err)
	}
	kubeletCfg := filepath.Join(root, "kubelet.yaml")
	if err := os.WriteFile(kubeletCfg, kubeletConfig(rn, pki, filepath.Join(root, "pod-logs")), 0o644); err != nil {
		return fmt.Errorf("writing kubelet config: %w", err)
	}
	fmt.Fprintf(progress, "starting the kubelet of node %s on %s:%d\n", RealNodeName, rn.NodeIP, rn.KubeletPort)
	kubelet, err := c.launch("kubelet", filepath.Join(logs, "kubelet.log"), []string{sbinPath}, opts.Bins.Kubelet,
		"--config="+kubeletCfg, "--kubeconfig="+kubeconfig, "--root-dir="+rn.KubeletRoot,
		"--hostname-override="+RealNodeName, "--node-ip="+rn.NodeIP,
		"--node-labels="+RealNodeLabelKey+"="+RealNodeLabelValue)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		return fmt.Errorf("building client: %w", err)
	}
	watched = append(watched, ctrd, kubelet)
	fmt.Fprintln(progress, "waiting for the real node to be Ready")
	return poll(ctx, watched, "node "+RealNodeName+" to become Ready (see logs/kubelet.log and logs/containerd.log)", func() bool {
		n, err := cs.CoreV1().Nodes().Get(ctx, RealNodeName, metav1.GetOptions{})
		return err == nil && nodeReady(n)
	})
}

// nodeReady reports whether n is Ready and the node-lifecycle controller has lifted its not-ready taint.
func nodeReady(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == corev1.TaintNodeNotReady {
			return false
		}
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// buildPauseImage builds e2e/cluster/pause statically and packs it as PauseImage under dir/images.
func buildPauseImage(ctx context.Context, dir string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "bin", "pause")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./e2e/cluster/pause")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the pause program: %w: %s", err, bytes.TrimSpace(out))
	}
	out := filepath.Join(dir, "images", "pause.tar")
	if err := ociimage.Write(out, ociimage.Spec{Binary: bin, Name: "pause", Ref: PauseImage, CACerts: "-"}); err != nil {
		return "", fmt.Errorf("packing the pause image: %w", err)
	}
	return out, nil
}

func containerdConfig(root, cniDir string) []byte {
	// Plugins that would reach outside root (opt installs to /opt/containerd) or that need kernel features we do
	// not use are off. The netns of pods go under the state dir, so that Stop finds them with the other mounts.
	return []byte(fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  # The machines deny CAP_SYS_RESOURCE even to root: the kubelet's negative oom_score_adj for sandboxes (-998) would
  # make runc fail; with this, containers get no lower a score than containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[6]q
    conf_dir = %[7]q
    max_conf_num = 1
`, filepath.Join(root, "containerd", "root"), filepath.Join(root, "containerd", "state"),
		filepath.Join(root, "containerd.sock"), filepath.Join(root, "containerd.sock.ttrpc"),
		PauseImage, cniDir, filepath.Join(root, "cni", "net.d")))
}

// cniConfig is a bridge network on rn.Bridge: host-local addresses from rn.Subnet (state kept under ipamDir), the
// bridge as gateway, no masquerading (pods need no way out of the machine, and no iptables rules are left behind).
// containerd adds the loopback interface itself.
func cniConfig(rn *RealNode, ipamDir string) []byte {
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       "kubedispatch",
		"plugins": []any{map[string]any{
			"type": "bridge", "bridge": rn.Bridge, "isGateway": true, "ipMasq": false, "hairpinMode": true,
			"ipam": map[string]any{
				"type":    "host-local",
				"ranges":  [][]map[string]string{{{"subnet": rn.Subnet, "gateway": rn.NodeIP}}},
				"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
				"dataDir": ipamDir,
			},
		}},
	}
	b, _ := json.MarshalIndent(conf, "", "  ")
	return b
}

func kubeletConfig(rn *RealNode, pki *realPKI, podLogs string) []byte {
	return []byte(fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: %[2]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[3]d
tlsCertFile: %[4]s
tlsPrivateKeyFile: %[5]s
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %[6]s
authorization:
  mode: Webhook
# The machines mount cgroup v1; kubelets from 1.35 on refuse it unless told otherwise.
failCgroupV1: false
failSwapOn: false
cgroupDriver: cgroupfs
# Every pod cgroup lives under this stack's own root, so two stacks' kubelets never see (and remove) each other's.
cgroupRoot: %[7]s
containerRuntimeEndpoint: unix://%[8]s
podLogsDir: %[9]s
registerNode: true
registerWithTaints:
- key: %[10]s
  value: %[11]s
  effect: NoSchedule
# A test machine's disk may be fuller than a node's: never evict, never collect images (they cannot be pulled again).
evictionHard:
  memory.available: 10Mi
  nodefs.available: 1%%
  nodefs.inodesFree: 1%%
  imagefs.available: 1%%
  imagefs.inodesFree: 1%%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
kubeAPIQPS: 50
kubeAPIBurst: 100
maxPods: 110
`, rn.NodeIP, rn.KubeletPort, rn.KubeletHealthzPort, pki.KubeletCert, pki.KubeletKey, pki.CA, rn.CgroupRoot,
		rn.ContainerdAddress, podLogs, RealNodeLabelKey, RealNodeLabelValue))
}

// pickSubnet returns a /24 in 10.244.0.0/16 that no interface of this machine has an address in (another stack's
// bridge), and its first address.
func pickSubnet() (*net.IPNet, net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, nil, fmt.Errorf("listing interface addresses: %w", err)
	}
	for tries := 0; tries < 100; tries++ {
		n, err := rand.Int(rand.Reader, big.NewInt(256))
		if err != nil {
			return nil, nil, fmt.Errorf("picking a pod subnet: %w", err)
		}
		_, subnet, _ := net.ParseCIDR(fmt.Sprintf("10.244.%d.0/24", n.Int64()))
		taken := false
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && (subnet.Contains(ipn.IP) || ipn.Contains(subnet.IP)) {
				taken = true
			}
		}
		if !taken {
			gw := net.IPv4(10, 244, byte(n.Int64()), 1).To4()
			return subnet, gw, nil
		}
	}
	return nil, nil, errors.New("picking a pod subnet: every /24 of 10.244.0.0/16 is in use")
}

// setupBridge creates the bridge with the node's address before the kubelet starts: the kubelet refuses a loopback
// node IP and checks that its IP is on a local interface. The CNI bridge plugin then reuses it.
func setupBridge(rn *RealNode) error {
	ip, err := lookPathSbin("ip")
	if err != nil {
		return err
	}
	ones, _ := mustCIDR(rn.Subnet).Mask.Size()
	for _, args := range [][]string{
		{"link", "add", "name", rn.Bridge, "type", "bridge"},
		{"addr", "add", fmt.Sprintf("%s/%d", rn.NodeIP, ones), "dev", rn.Bridge},
		{"link", "set", rn.Bridge, "up"},
	} {
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("setting up bridge %s (ip %s): %w: %s", rn.Bridge, strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

func mustCIDR(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		return &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(24, 32)}
	}
	return n
}

// cgroupHierarchies lists the mounted cgroup hierarchies (v1 controllers and the hybrid unified one).
func cgroupHierarchies() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "... <mount point> <options> ... - <fs type> <source> <super options>"
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields := strings.Fields(pre)
		fsType := strings.Fields(post)
		if len(fields) < 5 || len(fsType) == 0 || (fsType[0] != "cgroup" && fsType[0] != "cgroup2") {
			continue
		}
		dirs = append(dirs, unescapeMount(fields[4]))
	}
	return dirs
}

// makeCgroupRoot creates the kubelet's cgroupRoot in every hierarchy (the kubelet checks that it exists). A new v1
// cpuset cgroup starts with no CPUs and memory nodes: copy the parent's.
func makeCgroupRoot(root string) error {
	for _, h := range cgroupHierarchies() {
		d := filepath.Join(h, root)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating cgroup %s: %w", d, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			v, err := os.ReadFile(filepath.Join(h, f))
			if err != nil {
				continue // not the cpuset hierarchy
			}
			if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
				return fmt.Errorf("initialising cgroup %s/%s: %w", d, f, err)
			}
		}
	}
	return nil
}

// The kubelet sets these kernel tunables at start (protectKernelDefaults false; with true it refuses to start on a
// machine whose values differ). They are machine-wide, so the stack saves them before the first real node of the
// machine starts and restores them when the last one stops. The bridge plugin turns on IP forwarding too.
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/ipv4/ip_forward",
}

// sysctlDir holds the saved values and one file per running real node, named after its bridge.
const sysctlDir = "/run/kubedispatch-realnode"

func saveSysctls(rn *RealNode) error {
	if err := os.MkdirAll(sysctlDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", sysctlDir, err)
	}
	saved := filepath.Join(sysctlDir, "sysctls.json")
	if len(liveRealNodes()) == 0 {
		vals := map[string]string{}
		for _, k := range kubeletSysctls {
			if b, err := os.ReadFile(filepath.Join("/proc/sys", k)); err == nil {
				vals[k] = strings.TrimSpace(string(b))
			}
		}
		b, _ := json.Marshal(vals)
		if err := os.WriteFile(saved, b, 0o644); err != nil {
			return fmt.Errorf("saving kernel tunables: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(sysctlDir, rn.Bridge), []byte(rn.CgroupRoot+"\n"), 0o644); err != nil {
		return fmt.Errorf("recording the real node: %w", err)
	}
	return nil
}

// liveRealNodes returns the bridges of the real nodes recorded in sysctlDir whose bridge still exists.
func liveRealNodes() []string {
	ents, err := os.ReadDir(sysctlDir)
	if err != nil {
		return nil
	}
	var live []string
	for _, e := range ents {
		if e.Name() == "sysctls.json" {
			continue
		}
		if _, err := net.InterfaceByName(e.Name()); err == nil {
			live = append(live, e.Name())
		} else {
			_ = os.Remove(filepath.Join(sysctlDir, e.Name()))
		}
	}
	return live
}

func restoreSysctls(rn *RealNode) error {
	_ = os.Remove(filepath.Join(sysctlDir, rn.Bridge))
	if len(liveRealNodes()) > 0 {
		return nil
	}
	saved := filepath.Join(sysctlDir, "sysctls.json")
	b, err := os.ReadFile(saved)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading saved kernel tunables: %w", err)
	}
	var vals map[string]string
	if err := json.Unmarshal(b, &vals); err != nil {
		return fmt.Errorf("decoding saved kernel tunables: %w", err)
	}
	var errs []error
	for k, v := range vals {
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v+"\n"), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restoring %s: %w", k, err))
		}
	}
	_ = os.Remove(saved)
	return errors.Join(errs...)
}

// cleanup removes what the real node's processes leave behind once they are stopped: the pods' processes (found in
// the node's own cgroups) and containerd shims (found by this stack's containerd socket), every mount under the
// stack dir (pod volumes, container root file systems, network namespaces), the cgroups and the bridge. It only
// touches what this stack created.
func (rn *RealNode) cleanup(stackDir string) error {
	var errs []error
	hier := cgroupHierarchies()
	// Pod processes first, then the shims that reap them.
	for round := 0; round < 20; round++ {
		pids := cgroupPIDs(hier, rn.CgroupRoot)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, pid := range shimPIDs(rn.ContainerdAddress) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := unmountUnder(stackDir); err != nil {
		errs = append(errs, err)
	}
	if err := removeCgroups(hier, rn.CgroupRoot); err != nil {
		errs = append(errs, err)
	}
	if _, err := net.InterfaceByName(rn.Bridge); err == nil {
		if ip, err := lookPathSbin("ip"); err == nil {
			if out, err := exec.Command(ip, "link", "del", rn.Bridge).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("deleting bridge %s: %w: %s", rn.Bridge, err, bytes.TrimSpace(out)))
			}
		}
	}
	if err := restoreSysctls(rn); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// cgroupPIDs lists the processes in root's cgroups (recursively) of every hierarchy.
func cgroupPIDs(hier []string, root string) []int {
	seen := map[int]bool{}
	for _, h := range hier {
		base := filepath.Join(h, root)
		_ = filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
					seen[pid] = true
				}
			}
			return nil
		})
	}
	pids := make([]int, 0, len(seen))
	for p := range seen {
		pids = append(pids, p)
	}
	sort.Ints(pids)
	return pids
}

// shimPIDs finds the containerd shims started by the containerd listening on address (their command line names it).
func shimPIDs(address string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-address" && args[i+1] == address {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// unmountUnder lazily unmounts every mount point at or below dir, deepest first.
func unmountUnder(dir string) error {
	var errs []error
	for round := 0; round < 5; round++ {
		points := mountsUnder(dir)
		if len(points) == 0 {
			return nil
		}
		errs = errs[:0]
		for _, p := range points {
			if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("unmounting %s: %w", p, err))
			}
		}
	}
	if left := mountsUnder(dir); len(left) > 0 {
		errs = append(errs, fmt.Errorf("still mounted after unmounting: %s", strings.Join(left, ", ")))
	}
	return errors.Join(errs...)
}

func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMount(fields[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	// Deepest first, so that a mount is gone before the one it sits on.
	sort.Slice(points, func(i, j int) bool { return strings.Count(points[i], "/") > strings.Count(points[j], "/") })
	return points
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeCgroups removes root's cgroups, deepest first, in every hierarchy.
func removeCgroups(hier []string, root string) error {
	var errs []error
	for _, h := range hier {
		base := filepath.Join(h, root)
		var dirs []string
		_ = filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
