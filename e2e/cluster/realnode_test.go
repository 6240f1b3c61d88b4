package cluster

import (
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func testRealNode() *RealNode {
	return &RealNode{
		ContainerdAddress: "/tmp/s/realnode/containerd.sock", KubeletRoot: "/tmp/s/realnode/kubelet",
		KubeletPort: 12345, KubeletHealthzPort: 12346, CgroupRoot: "/kubedispatch-abc123", Bridge: "kdabc123",
		Subnet: "10.244.7.0/24", NodeIP: "10.244.7.1",
	}
}

func TestKubeletConfig(t *testing.T) {
	rn := testRealNode()
	pki := &realPKI{CA: "/p/ca.crt", KubeletCert: "/p/kubelet.crt", KubeletKey: "/p/kubelet.key"}
	var cfg map[string]any
	if err := yaml.Unmarshal(kubeletConfig(rn, pki, "/tmp/s/realnode/pod-logs"), &cfg); err != nil {
		t.Fatalf("kubelet config is not YAML: %v", err)
	}
	for k, want := range map[string]any{
		"kind": "KubeletConfiguration", "failCgroupV1": false, "cgroupDriver": "cgroupfs", "cgroupRoot": rn.CgroupRoot,
		"address": rn.NodeIP, "port": float64(rn.KubeletPort), "healthzPort": float64(rn.KubeletHealthzPort),
		"readOnlyPort": float64(0), "containerRuntimeEndpoint": "unix://" + rn.ContainerdAddress,
		"tlsCertFile": pki.KubeletCert, "podLogsDir": "/tmp/s/realnode/pod-logs",
	} {
		if cfg[k] != want {
			t.Errorf("%s = %v, want %v", k, cfg[k], want)
		}
	}
	taints, _ := cfg["registerWithTaints"].([]any)
	if len(taints) != 1 {
		t.Fatalf("registerWithTaints = %v, want one taint", cfg["registerWithTaints"])
	}
	taint := taints[0].(map[string]any)
	if taint["key"] != RealNodeLabelKey || taint["value"] != RealNodeLabelValue || taint["effect"] != "NoSchedule" {
		t.Errorf("taint = %v", taint)
	}
	if authz := cfg["authorization"].(map[string]any); authz["mode"] != "Webhook" {
		t.Errorf("authorization = %v, want Webhook (the apiserver's client certificate is authorized through the API)", authz)
	}
}

func TestCNIConfig(t *testing.T) {
	rn := testRealNode()
	var conf struct {
		Plugins []struct {
			Type      string `json:"type"`
			Bridge    string `json:"bridge"`
			IPMasq    bool   `json:"ipMasq"`
			IsGateway bool   `json:"isGateway"`
			IPAM      struct {
				Ranges  [][]map[string]string `json:"ranges"`
				DataDir string                `json:"dataDir"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(cniConfig(rn, "/tmp/s/realnode/cni/ipam"), &conf); err != nil {
		t.Fatal(err)
	}
	if len(conf.Plugins) != 1 {
		t.Fatalf("%d plugins, want 1 (containerd adds loopback itself)", len(conf.Plugins))
	}
	p := conf.Plugins[0]
	if p.Type != "bridge" || p.Bridge != rn.Bridge || p.IPMasq || !p.IsGateway {
		t.Errorf("bridge plugin = %+v", p)
	}
	if p.IPAM.Ranges[0][0]["subnet"] != rn.Subnet || p.IPAM.Ranges[0][0]["gateway"] != rn.NodeIP {
		t.Errorf("ranges = %v", p.IPAM.Ranges)
	}
	if !strings.HasPrefix(p.IPAM.DataDir, "/tmp/s/") {
		t.Errorf("IPAM state %q is outside the stack dir", p.IPAM.DataDir)
	}
}

func TestContainerdConfigStaysInItsRoot(t *testing.T) {
	root := "/tmp/s/realnode"
	conf := string(containerdConfig(root, cniDebianDir))
	for _, want := range []string{
		`root = "/tmp/s/realnode/containerd/root"`, `state = "/tmp/s/realnode/containerd/state"`,
		`address = "/tmp/s/realnode/containerd.sock"`, `sandbox_image = "` + PauseImage + `"`,
		"netns_mounts_under_state_dir = true", "restrict_oom_score_adj = true", `"io.containerd.internal.v1.opt"`,
		`conf_dir = "` + filepath.Join(root, "cni", "net.d") + `"`, `bin_dir = "/usr/lib/cni"`, "SystemdCgroup = false",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("containerd config lacks %s:\n%s", want, conf)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{`/a/b`: "/a/b", `/a\040b`: "/a b", `/x\134y`: `/x\y`, `/t\011`: "/t\t"} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestInClusterAPIEnv(t *testing.T) {
	c := &Cluster{Server: "https://127.0.0.1:23712"}
	env := c.InClusterAPIEnv()
	got := map[string]string{}
	for _, e := range env {
		got[e.Name] = e.Value
	}
	if got["KUBERNETES_SERVICE_HOST"] != "127.0.0.1" || got["KUBERNETES_SERVICE_PORT"] != "23712" {
		t.Errorf("env = %v", got)
	}
}

func TestPickSubnetAvoidsLocalAddresses(t *testing.T) {
	subnet, gw, err := pickSubnet()
	if err != nil {
		t.Fatal(err)
	}
	if !subnet.Contains(gw) || gw.To4()[3] != 1 {
		t.Errorf("gateway %s not the first address of %s", gw, subnet)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && subnet.Contains(ipn.IP) {
			t.Errorf("subnet %s overlaps local address %s", subnet, ipn)
		}
	}
}
