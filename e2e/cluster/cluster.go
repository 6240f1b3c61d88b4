package cluster

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/kubedispatch/kubedispatch/internal/sbfake"
)

//go:embed stages.yaml
var stagesYAML []byte

//go:embed node.yaml
var nodeYAML []byte

// Options say what to start and where.
type Options struct {
	// Dir holds everything of this stack: logs/, etcd data, PKI, kubeconfig, state.json. Created if missing.
	Dir string
	// Bins locates the control-plane binaries; see FindBinaries.
	Bins Binaries
	// SQS starts moto_server; PubSub starts the Pub/Sub emulator; ServiceBus starts the Service Bus fake
	// (internal/sbfake, on node).
	SQS, PubSub, ServiceBus bool
	// RealNode adds a real node (kubelet, containerd, runc) named RealNodeName next to the kwok node; see realnode.go.
	RealNode bool
	// Progress receives one line per step; nil discards.
	Progress io.Writer
	// ReadyTimeout bounds the whole start-up (default 3 minutes: generous for a loaded 2-core machine).
	ReadyTimeout time.Duration
}

// Cluster is a running local stack.
type Cluster struct {
	Dir         string `json:"dir"`
	Kubeconfig  string `json:"kubeconfig"`
	Server      string `json:"server"`
	Token       string `json:"token"`
	SQSEndpoint string `json:"sqsEndpoint,omitempty"`
	PubSubHost  string `json:"pubsubHost,omitempty"`
	KubectlDir  string `json:"kubectlDir,omitempty"`
	// ServiceBusAddr is the Service Bus fake's AMQP listener (host:port) and ServiceBus its control API; both are
	// empty unless Options.ServiceBus. sbfake.ConnectionString(ServiceBusAddr, ...) is what azservicebus needs.
	ServiceBusAddr string          `json:"serviceBusAddr,omitempty"`
	ServiceBus     *sbfake.Control `json:"serviceBus,omitempty"`
	// RealNode is set when Options.RealNode started a real node.
	RealNode *RealNode `json:"realNode,omitempty"`

	Procs []*process `json:"processes"`

	mu sync.Mutex
}

// NodeName is the kwok fake node every pod can land on.
const NodeName = "kwok-node-0"

// Env returns the environment a person or a program needs to use the stack (the lines of cluster.env).
func (c *Cluster) Env() map[string]string {
	env := map[string]string{"KUBECONFIG": c.Kubeconfig}
	if c.SQSEndpoint != "" {
		env["AWS_ENDPOINT_URL_SQS"] = c.SQSEndpoint
		env["AWS_REGION"] = "us-east-1"
		env["AWS_ACCESS_KEY_ID"] = "test"
		env["AWS_SECRET_ACCESS_KEY"] = "test"
	}
	if c.PubSubHost != "" {
		env["PUBSUB_EMULATOR_HOST"] = c.PubSubHost
	}
	c.serviceBusEnv(env)
	return env
}

// EnvFile renders Env as shell export lines, plus kubectl on PATH.
func (c *Cluster) EnvFile() string {
	env := c.Env()
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by `make cluster-up`; source it: . .local/cluster.env\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%q\n", k, env[k])
	}
	if c.KubectlDir != "" {
		fmt.Fprintf(&b, "export PATH=%q:\"$PATH\"\n", c.KubectlDir)
	}
	return b.String()
}

// RESTConfig returns a client config for the stack's kube-apiserver.
func (c *Cluster) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:            c.Server,
		BearerToken:     c.Token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		QPS:             200,
		Burst:           400,
	}
}

// Start brings the stack up and returns when every component is ready. On any failure it stops what it started and
// returns one error naming the component and its log file.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 3 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, opts.ReadyTimeout)
	defer cancel()
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("resolving stack dir: %w", err)
	}
	for _, d := range []string{"logs", "pki", "certs", "bin"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("creating stack dir: %w", err)
		}
	}
	// A port can still be taken by another listener between the check and the bind (another stack starting on the
	// same machine); then the whole stack starts again on new ports, which costs seconds, not a failed run.
	for attempt := 1; ; attempt++ {
		_ = os.RemoveAll(filepath.Join(dir, "etcd"))
		c := &Cluster{Dir: dir}
		err := c.start(ctx, opts, progress)
		if err == nil {
			return c, nil
		}
		if stopErr := c.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		if !bindConflict(err) || attempt == 3 || ctx.Err() != nil {
			return nil, err
		}
		fmt.Fprintf(progress, "a port was taken during start-up, starting the stack again on new ports: %v\n", firstLine(err))
	}
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

func (c *Cluster) start(ctx context.Context, opts Options, progress io.Writer) error {
	if err := opts.Bins.check(); err != nil {
		return err
	}
	if opts.Bins.Kubectl != "" {
		link := filepath.Join(c.Dir, "bin", "kubectl")
		_ = os.Remove(link)
		if err := os.Symlink(opts.Bins.Kubectl, link); err == nil {
			c.KubectlDir = filepath.Join(c.Dir, "bin")
		}
	}
	ports, err := FreePorts(8)
	if err != nil {
		return err
	}
	var (
		realTools               realNodeTools
		realPKI                 *realPKI
		realAPIArgs, realKCMArg []string
	)
	if opts.RealNode {
		if realTools, realPKI, realAPIArgs, realKCMArg, err = c.prepareRealNode(opts.Bins.Kubelet, ports[6:8]); err != nil {
			return err
		}
	}
	etcdPort, peerPort, apiPort, kwokPort, motoPort, pubsubPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	logs := filepath.Join(c.Dir, "logs")
	logPath := func(n string) string { return filepath.Join(logs, n+".log") }

	// Queue emulators first: they are independent of the control plane and the JVM is the slowest to start.
	var emu []func(context.Context) error
	if opts.SQS {
		moto, err := findMoto()
		if err != nil {
			return err
		}
		fmt.Fprintf(progress, "starting moto_server (SQS) on 127.0.0.1:%d\n", motoPort)
		p, err := c.launch("moto_server", logPath("moto"), nil, moto, "-H", "127.0.0.1", "-p", strconv.Itoa(motoPort))
		if err != nil {
			return err
		}
		c.SQSEndpoint = fmt.Sprintf("http://127.0.0.1:%d", motoPort)
		emu = append(emu, func(ctx context.Context) error { return waitHTTP(ctx, p, c.SQSEndpoint+"/", nil, true) })
	}
	if opts.PubSub {
		emulator, err := findPubSubEmulator()
		if err != nil {
			return err
		}
		fmt.Fprintf(progress, "starting Pub/Sub emulator on 127.0.0.1:%d\n", pubsubPort)
		p, err := c.launch("pubsub-emulator", logPath("pubsub-emulator"), nil, emulator,
			"--host=127.0.0.1", "--port="+strconv.Itoa(pubsubPort))
		if err != nil {
			return err
		}
		c.PubSubHost = fmt.Sprintf("127.0.0.1:%d", pubsubPort)
		emu = append(emu, func(ctx context.Context) error {
			return waitHTTP(ctx, p, "http://"+c.PubSubHost+"/", nil, true)
		})
	}
	if opts.ServiceBus {
		wait, err := c.startServiceBus(progress, logPath("servicebus-fake"))
		if err != nil {
			return err
		}
		emu = append(emu, wait)
	}

	// etcd.
	fmt.Fprintf(progress, "starting etcd on 127.0.0.1:%d\n", etcdPort)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	etcd, err := c.launch("etcd", logPath("etcd"), nil, opts.Bins.Etcd,
		"--name=kd", "--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kd="+peerURL, "--unsafe-no-fsync", "--log-level=warn")
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, etcd, etcdURL+"/health", nil, false); err != nil {
		return err
	}

	// kube-apiserver with a static admin token and a service-account key pair (so the TokenRequest API issues
	// ServiceAccount tokens), RBAC, and OwnerReferencesPermissionEnforcement: a client that is not cluster admin may set
	// blockOwnerDeletion only on owners whose finalizers it may update, as on OpenShift, so a test that runs the
	// dispatcher with the RBAC of deploy/ finds a missing finalizers rule.
	pki := filepath.Join(c.Dir, "pki")
	token, err := writePKI(pki)
	if err != nil {
		return err
	}
	c.Token = token
	c.Server = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	fmt.Fprintf(progress, "starting kube-apiserver on %s\n", c.Server)
	apiArgs := []string{"--etcd-servers=" + etcdURL, "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort), "--cert-dir=" + filepath.Join(c.Dir, "certs"),
		"--token-auth-file=" + filepath.Join(pki, "tokens.csv"), "--authorization-mode=RBAC",
		"--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + filepath.Join(pki, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(pki, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16", "--endpoint-reconciler-type=none",
		"--max-requests-inflight=800", "--max-mutating-requests-inflight=400"}
	api, err := c.launch("kube-apiserver", logPath("kube-apiserver"), nil, opts.Bins.APIServer, append(apiArgs, realAPIArgs...)...)
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, api, c.Server+"/readyz", map[string]string{"Authorization": "Bearer " + token}, false); err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	if err := writeKubeconfig(c.Kubeconfig, c.Server, token); err != nil {
		return err
	}

	// controller-manager, scheduler and kwok, together.
	fmt.Fprintln(progress, "starting kube-controller-manager, kube-scheduler and kwok")
	controllers := "job-controller,serviceaccount-controller,garbage-collector-controller,ttl-after-finished-controller,namespace-controller,node-lifecycle-controller,resourcequota-controller"
	if opts.RealNode {
		controllers += realNodeControllers
	}
	kcm, err := c.launch("kube-controller-manager", logPath("kube-controller-manager"), nil, opts.Bins.ControllerManager,
		append([]string{"--kubeconfig=" + c.Kubeconfig, "--authentication-kubeconfig=" + c.Kubeconfig, "--authorization-kubeconfig=" + c.Kubeconfig,
			"--controllers=" + controllers,
			"--leader-elect=false", "--secure-port=0", "--use-service-account-credentials=false",
			"--kube-api-qps=300", "--kube-api-burst=600", "--concurrent-job-syncs=20"}, realKCMArg...)...)
	if err != nil {
		return err
	}
	sched, err := c.launch("kube-scheduler", logPath("kube-scheduler"), nil, opts.Bins.Scheduler,
		"--kubeconfig="+c.Kubeconfig, "--authentication-kubeconfig="+c.Kubeconfig, "--authorization-kubeconfig="+c.Kubeconfig,
		"--leader-elect=false", "--secure-port=0")
	if err != nil {
		return err
	}
	stages := filepath.Join(c.Dir, "kwok-stages.yaml")
	if err := os.WriteFile(stages, stagesYAML, 0o644); err != nil {
		return fmt.Errorf("writing kwok stages: %w", err)
	}
	kwok, err := c.launch("kwok", logPath("kwok"), nil, opts.Bins.Kwok,
		"--kubeconfig="+c.Kubeconfig, "--config="+stages,
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--cidr=10.0.0.0/24", "--node-ip=10.0.0.1", "--server-address=127.0.0.1:"+strconv.Itoa(kwokPort))
	if err != nil {
		return err
	}

	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		return fmt.Errorf("building client: %w", err)
	}
	var node corev1.Node
	if err := yaml.Unmarshal(nodeYAML, &node); err != nil {
		return fmt.Errorf("decoding kwok node manifest: %w", err)
	}
	if _, err := cs.CoreV1().Nodes().Create(ctx, &node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating kwok node: %w", err)
	}
	watched := []*process{etcd, api, kcm, sched, kwok}
	fmt.Fprintln(progress, "waiting for the fake node to be Ready and the default ServiceAccount")
	if err := poll(ctx, watched, "the kwok node to become Ready (see logs/kwok.log and logs/kube-controller-manager.log)", func() bool {
		n, err := cs.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, t := range n.Spec.Taints {
			if t.Key == corev1.TaintNodeNotReady {
				return false
			}
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	}); err != nil {
		return err
	}
	if err := poll(ctx, watched, "the default ServiceAccount (see logs/kube-controller-manager.log)", func() bool {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	}); err != nil {
		return err
	}
	if opts.RealNode {
		if err := c.startRealNode(ctx, opts, realTools, realPKI, progress, watched); err != nil {
			return err
		}
	}
	for _, wait := range emu {
		if err := wait(ctx); err != nil {
			return err
		}
	}
	return c.writeState()
}

// launch starts a component and records it for Stop.
func (c *Cluster) launch(name, logPath string, env []string, bin string, args ...string) (*process, error) {
	p, err := startProcess(name, logPath, env, bin, args...)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.Procs = append(c.Procs, p)
	c.mu.Unlock()
	return p, nil
}

// Stop stops every component in reverse start order and waits for each to exit.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	procs := append([]*process(nil), c.Procs...)
	c.mu.Unlock()
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].stop(15 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if c.RealNode != nil {
		if err := c.RealNode.cleanup(c.Dir); err != nil {
			errs = append(errs, fmt.Errorf("cleaning up the real node: %w", err))
		}
	}
	_ = os.Remove(filepath.Join(c.Dir, stateFile))
	return errors.Join(errs...)
}

const stateFile = "state.json"

func (c *Cluster) writeState() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding stack state: %w", err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, stateFile), b, 0o644); err != nil {
		return fmt.Errorf("writing stack state: %w", err)
	}
	return nil
}

// Load reads the state of a stack started earlier (by another process) from dir. It returns (nil, nil) when there
// is none.
func Load(dir string) (*Cluster, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading stack state: %w", err)
	}
	var c Cluster
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("decoding stack state %s: %w", filepath.Join(dir, stateFile), err)
	}
	return &c, nil
}

// Running reports which of the stack's processes are alive.
func (c *Cluster) Running() []string {
	var names []string
	for _, p := range c.Procs {
		if p.running() {
			names = append(names, fmt.Sprintf("%s (pid %d)", p.Name, p.PID))
		}
	}
	return names
}

// waitHTTP waits until url answers 200 (or, with anyAnswer, any HTTP response) while p keeps running.
func waitHTTP(ctx context.Context, p *process, url string, headers map[string]string, anyAnswer bool) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback test stack with a self-signed cert
	return poll(ctx, []*process{p}, p.Name+" at "+url, func() bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return anyAnswer || resp.StatusCode == http.StatusOK
	})
}

// poll calls ready every 100 ms until it returns true, one of procs exits (its log is shown), or ctx ends.
func poll(ctx context.Context, procs []*process, what string, ready func() bool) error {
	for {
		for _, p := range procs {
			if !p.running() {
				return p.exitError()
			}
		}
		if ready() {
			return nil
		}
		select {
		case <-ctx.Done():
			var logs []string
			for _, p := range procs {
				logs = append(logs, p.LogPath)
			}
			return fmt.Errorf("waiting for %s: %w (logs: %s)", what, ctx.Err(), strings.Join(logs, ", "))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// writePKI writes the admin token file and a service-account RSA key pair; it returns the token.
func writePKI(dir string) (string, error) {
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generating admin token: %w", err)
	}
	token := hex.EncodeToString(raw)
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(token+`,admin,uid-admin,"system:masters"`+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing token file: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", fmt.Errorf("generating service-account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", fmt.Errorf("encoding service-account public key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return "", fmt.Errorf("writing service-account key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return "", fmt.Errorf("writing service-account public key: %w", err)
	}
	return token, nil
}

// WriteKubeconfig writes to path a kubeconfig for the stack's API server that authenticates with token instead of
// the admin one: for example a ServiceAccount token from the TokenRequest API, to run a program with that account's
// RBAC only.
func (c *Cluster) WriteKubeconfig(path, token string) error {
	return writeKubeconfig(path, c.Server, token)
}

func writeKubeconfig(path, server, token string) error {
	cfg := clientcmdConfig(server, token)
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}
