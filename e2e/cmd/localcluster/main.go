package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kubedispatch/kubedispatch/e2e/cluster"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("localcluster", flag.ContinueOnError)
	dir := fs.String("dir", envOr("KUBEDISPATCH_LOCAL_DIR", ".local"), "directory for the stack's state, logs and cluster.env (env KUBEDISPATCH_LOCAL_DIR)")
	noSQS := fs.Bool("no-sqs", false, "do not start moto_server")
	noPubSub := fs.Bool("no-pubsub", false, "do not start the Pub/Sub emulator")
	noServiceBus := fs.Bool("no-servicebus", false, "do not start the Service Bus fake (node)")
	realNode := fs.Bool("real-node", envOr("REAL_NODE", "") == "1", "also start a real node (kubelet + containerd) that runs pods which select and tolerate it (env REAL_NODE=1)")
	if len(args) == 0 {
		return errors.New("usage: localcluster up|down|status [--dir DIR] [--no-sqs] [--no-pubsub] [--no-servicebus] [--real-node]")
	}
	verb := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	stackDir := filepath.Join(*dir, "stack")
	switch verb {
	case "up":
		return up(*dir, stackDir, cluster.Options{SQS: !*noSQS, PubSub: !*noPubSub, ServiceBus: !*noServiceBus, RealNode: *realNode})
	case "down":
		return down(stackDir)
	case "status":
		c, err := cluster.Load(stackDir)
		if err != nil {
			return err
		}
		if c == nil {
			fmt.Println("no local stack recorded in", stackDir)
			return nil
		}
		fmt.Printf("stack in %s, API server %s\nrunning: %s\n", stackDir, c.Server, strings.Join(c.Running(), ", "))
		return nil
	default:
		return fmt.Errorf("unknown verb %q: want up, down or status", verb)
	}
}

func up(dir, stackDir string, opts cluster.Options) error {
	if c, err := cluster.Load(stackDir); err != nil {
		return err
	} else if c != nil && len(c.Running()) > 0 {
		fmt.Printf("a local stack is already running (%s); `make cluster-down` first to restart it\n", strings.Join(c.Running(), ", "))
		return writeEnv(dir, c)
	} else if c != nil && c.RealNode != nil {
		// A stack that died without cluster-down leaves its real node's containers, mounts, cgroups and bridge.
		fmt.Println("cleaning up after a local stack that was not stopped")
		if err := c.Stop(); err != nil {
			fmt.Println("  (some of it could not be cleaned up:", err, ")")
		}
	}
	root, err := cluster.RepoRoot()
	if err != nil {
		return err
	}
	fmt.Println("checking the control-plane binaries (built once, cached by version)")
	bins, err := cluster.EnsureBinaries(root)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	opts.Dir, opts.Bins, opts.Progress = stackDir, bins, prefix{}
	c, err := cluster.Start(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Printf("local stack ready in %.1fs (logs in %s)\n", time.Since(start).Seconds(), filepath.Join(c.Dir, "logs"))
	if err := writeEnv(dir, c); err != nil {
		return err
	}
	if c.RealNode != nil {
		printRealNodeUsage(c)
	}
	return nil
}

func writeEnv(dir string, c *cluster.Cluster) error {
	path := filepath.Join(dir, "cluster.env")
	if err := os.WriteFile(path, []byte(c.EnvFile()), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	fmt.Printf("\nUse it from your shell:\n  . %s\n  kubectl get nodes\n", path)
	return nil
}

func down(stackDir string) error {
	c, err := cluster.Load(stackDir)
	if err != nil {
		return err
	}
	if c == nil {
		fmt.Println("no local stack running")
		return nil
	}
	fmt.Printf("stopping %d processes\n", len(c.Procs))
	if err := c.Stop(); err != nil {
		return err
	}
	if left := c.Running(); len(left) > 0 {
		return fmt.Errorf("still running after stop: %s", strings.Join(left, ", "))
	}
	fmt.Println("local stack stopped; nothing left running")
	return nil
}

type prefix struct{}

func (prefix) Write(b []byte) (int, error) {
	fmt.Print("  " + string(b))
	return len(b), nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// printRealNodeUsage says how to run a pod on the real node.
func printRealNodeUsage(c *cluster.Cluster) {
	env := c.InClusterAPIEnv()
	fmt.Printf(`
Real node %[1]s (kubelet on %[2]s:%[3]d, containerd at %[4]s):
  Pods run there only if they select and tolerate it; everything else stays on the kwok node:
    nodeSelector: {%[5]s: %[6]s}
    tolerations: [{key: %[5]s, operator: Equal, value: %[6]s, effect: NoSchedule}]
  No registry is reachable: build images with `+"`make image`"+` and import them, then use imagePullPolicy: IfNotPresent:
    ctr -a %[4]s -n k8s.io images import bin/images/worker.tar
  Pods that call the API server use hostNetwork: true and set %[7]s=%[8]s and %[9]s=%[10]s (no kube-proxy);
  its certificate verifies with the CA in the kube-root-ca.crt ConfigMap. See docs/real-node.md.
  Logs: kubectl logs <pod>; the kubelet's own log is %[11]s.
`, cluster.RealNodeName, c.RealNode.NodeIP, c.RealNode.KubeletPort, c.RealNode.ContainerdAddress,
		cluster.RealNodeLabelKey, cluster.RealNodeLabelValue, env[0].Name, env[0].Value, env[1].Name, env[1].Value,
		filepath.Join(c.Dir, "logs", "kubelet.log"))
}
