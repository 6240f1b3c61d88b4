package dispatch

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/sources"
)

func TestNamespaceAllowed(t *testing.T) {
	team := map[string]string{"kubedispatch.io/team": "etl"}
	cases := map[string]struct {
		allowed  *v1alpha1.AllowedNamespaces
		labels   map[string]string
		wantErr  string // substring; "" = allowed
		wantNone bool
	}{
		"unset allows none": {
			wantErr: `ClusterTriggerAuthentication "shared" allows no namespace (its spec.allowedNamespaces is empty), so namespace team-a may not use it`,
		},
		"empty allows none": {
			allowed: &v1alpha1.AllowedNamespaces{},
			wantErr: "allows no namespace",
		},
		"listed by name": {
			allowed: &v1alpha1.AllowedNamespaces{Names: []string{"other", "team-a"}},
		},
		"not listed": {
			allowed: &v1alpha1.AllowedNamespaces{Names: []string{"other"}},
			wantErr: `ClusterTriggerAuthentication "shared" does not allow namespace team-a`,
		},
		"selected by label": {
			allowed: &v1alpha1.AllowedNamespaces{NamespaceSelector: &metav1.LabelSelector{MatchLabels: team}},
			labels:  map[string]string{"kubedispatch.io/team": "etl", "x": "y"},
		},
		"label does not match": {
			allowed: &v1alpha1.AllowedNamespaces{NamespaceSelector: &metav1.LabelSelector{MatchLabels: team}},
			labels:  map[string]string{"kubedispatch.io/team": "web"},
			wantErr: "does not allow namespace team-a",
		},
		"empty selector matches every namespace (KEDA's default, spelled out)": {
			allowed: &v1alpha1.AllowedNamespaces{NamespaceSelector: &metav1.LabelSelector{}},
		},
		"name or selector": {
			allowed: &v1alpha1.AllowedNamespaces{Names: []string{"team-a"}, NamespaceSelector: &metav1.LabelSelector{MatchLabels: team}},
		},
		"invalid selector": {
			allowed: &v1alpha1.AllowedNamespaces{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "team", Operator: "Near"}}}},
			wantErr: `ClusterTriggerAuthentication "shared" has an invalid spec.allowedNamespaces.namespaceSelector`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := namespaceAllowed("shared", tc.allowed, "team-a", tc.labels)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("namespaceAllowed = %v, want nil", err)
				}
				return
			}
			var ce *sources.ConfigError
			if !sources.IsConfigError(err) {
				t.Fatalf("namespaceAllowed = %v, want a ConfigError", err)
			}
			ce = err.(*sources.ConfigError)
			if ce.Field != "authenticationRef" || !strings.Contains(ce.Detail, tc.wantErr) {
				t.Errorf("namespaceAllowed = %v, want authenticationRef: ...%s...", ce, tc.wantErr)
			}
		})
	}
}

func TestFileFromSecret(t *testing.T) {
	pod := &corev1.PodSpec{Volumes: []corev1.Volume{
		{Name: "gcp", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "gcp-key"}}},
		{Name: "mapped", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "mapped-key",
			Items: []corev1.KeyToPath{{Key: "sa.json", Path: "creds/key.json"}}}}},
		{Name: "proj", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj-key"},
				Items: []corev1.KeyToPath{{Key: "k", Path: "p/key.json"}}}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj-all"}}},
		}}}},
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/etc"}}},
	}}
	c := &corev1.Container{Name: "worker", VolumeMounts: []corev1.VolumeMount{
		{Name: "gcp", MountPath: "/var/secrets/google"},
		{Name: "mapped", MountPath: "/etc/mapped/"},
		{Name: "gcp", MountPath: "/etc/single.json", SubPath: "key.json"},
		{Name: "proj", MountPath: "/projected"},
		{Name: "scratch", MountPath: "/tmp"},
		{Name: "host", MountPath: "/host"},
		{Name: "gcp", MountPath: "/expr", SubPathExpr: "$(POD)"},
		{Name: "missing", MountPath: "/missing"},
	}}
	cases := map[string]struct {
		path       string
		want       secretFile
		wantDetail string
	}{
		"key of a Secret volume":           {path: "/var/secrets/google/key.json", want: secretFile{secret: "gcp-key", key: "key.json"}},
		"item of a Secret volume":          {path: "/etc/mapped/creds/key.json", want: secretFile{secret: "mapped-key", key: "sa.json"}},
		"subPath mount of one key":         {path: "/etc/single.json", want: secretFile{secret: "gcp-key", key: "key.json"}},
		"projected Secret item":            {path: "/projected/p/key.json", want: secretFile{secret: "proj-key", key: "k"}},
		"projected Secret without items":   {path: "/projected/other.json", want: secretFile{secret: "proj-all", key: "other.json"}},
		"/dev/zero":                        {path: "/dev/zero", wantDetail: "is not under any volume mounted in container worker"},
		"/etc/passwd":                      {path: "/etc/passwd", wantDetail: "is not under any volume mounted in container worker"},
		"a sibling of a mount":             {path: "/etc/mappedx/key.json", wantDetail: "is not under any volume"},
		"an item path the volume lacks":    {path: "/etc/mapped/creds/other.json", wantDetail: "is not a key of Secret mapped-key"},
		"a key in a subdirectory":          {path: "/var/secrets/google/sub/key.json", wantDetail: "is not a key of Secret gcp-key"},
		"the mount point itself":           {path: "/var/secrets/google", wantDetail: "is the mount point /var/secrets/google itself"},
		"an emptyDir":                      {path: "/tmp/key.json", wantDetail: "is on volume scratch, which is not a Secret volume"},
		"a hostPath":                       {path: "/host/passwd", wantDetail: "is on volume host, which is not a Secret volume"},
		"subPathExpr":                      {path: "/expr/key.json", wantDetail: "uses subPathExpr"},
		"a volume not in the pod":          {path: "/missing/key.json", wantDetail: "volume missing is not in the pod template"},
		"relative":                         {path: "var/secrets/google/key.json", wantDetail: "is not an absolute, clean path"},
		"dot-dot escape":                   {path: "/var/secrets/google/../../../etc/passwd", wantDetail: "is not an absolute, clean path"},
		"kubelet's ..data link":            {path: "/var/secrets/google/..data/key.json", wantDetail: `starting with ".."`},
		"a path no projected Secret holds": {path: "/projected/p/other.json", wantDetail: "is not a key of a Secret in projected volume proj"},
		"trailing slash is not clean":      {path: "/var/secrets/google/key.json/", wantDetail: "is not an absolute, clean path"},
		"double slash is not clean either": {path: "/var/secrets//google/key.json", wantDetail: "is not an absolute, clean path"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, detail := fileFromSecret(pod, c, tc.path)
			if tc.wantDetail != "" {
				if !strings.Contains(detail, tc.wantDetail) || got != (secretFile{}) {
					t.Errorf("fileFromSecret(%s) = %+v, %q; want a refusal containing %q", tc.path, got, detail, tc.wantDetail)
				}
				return
			}
			if detail != "" {
				t.Fatalf("fileFromSecret(%s) refused: %s", tc.path, detail)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(secretFile{})); diff != "" {
				t.Errorf("fileFromSecret(%s) (-want +got):\n%s", tc.path, diff)
			}
		})
	}
}

// clusterAuth is a ClusterTriggerAuthentication named name mapping Secret key "key" of "shared-creds" (in the
// dispatcher's namespace) to parameter "token".
func clusterAuth(name string, allowed *v1alpha1.AllowedNamespaces) *v1alpha1.ClusterTriggerAuthentication {
	return &v1alpha1.ClusterTriggerAuthentication{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ClusterTriggerAuthenticationSpec{
			TriggerAuthenticationSpec: v1alpha1.TriggerAuthenticationSpec{SecretTargetRef: []v1alpha1.SecretTargetRef{
				{Parameter: "token", Name: "shared-creds", Key: "key"}}},
			AllowedNamespaces: allowed,
		},
	}
}

func secret(namespace, name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

// withKeyFile gives the ScaledJob's container a gcp-style key file: GOOGLE_APPLICATION_CREDENTIALS=path and the
// Secret gcp-key mounted at /var/secrets/google; the trigger reads it through credentialsFromEnvFile.
func withKeyFile(path string) func(*v1alpha1.ScaledJob) {
	return func(sj *v1alpha1.ScaledJob) {
		spec := &sj.Spec.JobTargetRef.Template.Spec
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "gcp", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: "gcp-key"}}})
		c := &spec.Containers[0]
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "gcp", MountPath: "/var/secrets/google", ReadOnly: true})
		c.Env = append(c.Env, corev1.EnvVar{Name: "GOOGLE_APPLICATION_CREDENTIALS", Value: path})
		sj.Spec.Triggers[0].Metadata = map[string]string{"credentialsFromEnvFile": "GOOGLE_APPLICATION_CREDENTIALS"}
	}
}

func TestResolveConfigsSecurity(t *testing.T) {
	const dispatcherNS = "kubedispatch-system"
	big := strings.Repeat("k", sources.MaxValueBytes+1)
	ctaRef := func(name string) func(*v1alpha1.ScaledJob) {
		return func(sj *v1alpha1.ScaledJob) {
			sj.Spec.Triggers[0].AuthenticationRef = &v1alpha1.AuthenticationRef{Name: name, Kind: v1alpha1.KindClusterTriggerAuthentication}
		}
	}
	shared := secret(dispatcherNS, "shared-creds", map[string]string{"key": "cluster-secret"})
	teamNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace, Labels: map[string]string{"team": "etl"}}}
	type want struct {
		AuthParams map[string]string
		AuthOrigin sources.Origin
		EnvFiles   map[string]string
	}
	cases := map[string]struct {
		mutate     func(*v1alpha1.ScaledJob)
		objs       []client.Object
		want       want
		wantErr    string // substring of describeInvalid; "" = resolved
		wantNoText string // must not appear in the error
	}{
		"TriggerAuthentication: namespace credentials": {
			mutate: func(sj *v1alpha1.ScaledJob) {
				sj.Spec.Triggers[0].AuthenticationRef = &v1alpha1.AuthenticationRef{Name: "ta"}
			},
			objs: []client.Object{triggerAuth("ta", "token", "ns-creds", "key"), secret(testNamespace, "ns-creds", map[string]string{"key": "ns-secret"})},
			want: want{AuthParams: map[string]string{"token": "ns-secret"}, AuthOrigin: sources.OriginNamespace},
		},
		"ClusterTriggerAuthentication without allowedNamespaces": {
			mutate:  ctaRef("shared"),
			objs:    []client.Object{clusterAuth("shared", nil), shared},
			wantErr: `spec.triggers[0].authenticationRef: ClusterTriggerAuthentication "shared" allows no namespace (its spec.allowedNamespaces is empty), so namespace team-a may not use it`,
		},
		"ClusterTriggerAuthentication listing the namespace": {
			mutate: ctaRef("shared"),
			objs:   []client.Object{clusterAuth("shared", &v1alpha1.AllowedNamespaces{Names: []string{testNamespace}}), shared},
			want:   want{AuthParams: map[string]string{"token": "cluster-secret"}, AuthOrigin: sources.OriginCluster},
		},
		"ClusterTriggerAuthentication selecting the namespace by label": {
			mutate: ctaRef("shared"),
			objs: []client.Object{teamNS, shared, clusterAuth("shared", &v1alpha1.AllowedNamespaces{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "etl"}}})},
			want: want{AuthParams: map[string]string{"token": "cluster-secret"}, AuthOrigin: sources.OriginCluster},
		},
		"ClusterTriggerAuthentication for other namespaces": {
			mutate: ctaRef("shared"),
			objs: []client.Object{teamNS, shared, clusterAuth("shared", &v1alpha1.AllowedNamespaces{Names: []string{"team-b"},
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "web"}}})},
			wantErr: `spec.triggers[0].authenticationRef: ClusterTriggerAuthentication "shared" does not allow namespace team-a`,
		},
		"key file from a mounted Secret": {
			mutate: withKeyFile("/var/secrets/google/key.json"),
			objs:   []client.Object{secret(testNamespace, "gcp-key", map[string]string{"key.json": `{"type":"service_account"}`})},
			want:   want{EnvFiles: map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": `{"type":"service_account"}`}},
		},
		"key file /dev/zero": {
			mutate:  withKeyFile("/dev/zero"),
			wantErr: `spec.triggers[0].metadata.credentialsFromEnvFile: file "/dev/zero" (environment variable GOOGLE_APPLICATION_CREDENTIALS of container worker) is not under any volume mounted in container worker. The dispatcher reads such a file from the Secret volume mounted there`,
		},
		"key file /etc/passwd": {
			mutate:  withKeyFile("/etc/passwd"),
			wantErr: `spec.triggers[0].metadata.credentialsFromEnvFile: file "/etc/passwd"`,
		},
		"key file escaping its mount": {
			mutate:  withKeyFile("/var/secrets/google/../../../etc/passwd"),
			wantErr: "spec.triggers[0].metadata.credentialsFromEnvFile: ",
		},
		"key file larger than 64 KiB": {
			mutate:     withKeyFile("/var/secrets/google/key.json"),
			objs:       []client.Object{secret(testNamespace, "gcp-key", map[string]string{"key.json": big})},
			wantErr:    `spec.triggers[0].metadata.credentialsFromEnvFile: key "key.json" of Secret "gcp-key" in namespace team-a holds 65537 bytes, more than the 65536`,
			wantNoText: "kkkk",
		},
		"Secret value larger than 64 KiB": {
			mutate: func(sj *v1alpha1.ScaledJob) {
				sj.Spec.Triggers[0].AuthenticationRef = &v1alpha1.AuthenticationRef{Name: "ta"}
			},
			objs:       []client.Object{triggerAuth("ta", "token", "ns-creds", "key"), secret(testNamespace, "ns-creds", map[string]string{"key": big})},
			wantErr:    "spec.triggers[0].authenticationRef: key \"key\" of Secret \"ns-creds\" in namespace team-a holds 65537 bytes",
			wantNoText: "kkkk",
		},
		"env value larger than 64 KiB": {
			mutate: func(sj *v1alpha1.ScaledJob) {
				sj.Spec.JobTargetRef.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "BIG", Value: big}}
				sj.Spec.Triggers[0].Metadata = map[string]string{"queueLengthFromEnv": "BIG"}
			},
			wantErr:    "spec.envSourceContainerName: env BIG of container worker holds 65537 bytes",
			wantNoText: "kkkk",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			sj := makeSJ("etl").mutate(tc.mutate).obj()
			env := newLoopEnv(t, interceptor.Funcs{}, append([]client.Object{sj}, tc.objs...)...)
			cfgs, err := env.r.resolveConfigs(context.Background(), sj)
			if tc.wantErr != "" {
				if err == nil || !sources.IsConfigError(err) {
					t.Fatalf("resolveConfigs = %v, want a ConfigError", err)
				}
				msg := describeInvalid(err)
				if !strings.Contains(msg, tc.wantErr) {
					t.Errorf("error %q, want it to contain %q", msg, tc.wantErr)
				}
				if tc.wantNoText != "" && strings.Contains(msg, tc.wantNoText) {
					t.Errorf("error %q shows the value", msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolveConfigs: %v", err)
			}
			got := want{AuthParams: cfgs[0].AuthParams, AuthOrigin: cfgs[0].AuthOrigin, EnvFiles: cfgs[0].EnvFiles}
			if len(got.AuthParams) == 0 {
				got.AuthParams = nil
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

// A ClusterTriggerAuthentication is checked on every resolution: after the platform team removes the namespace from
// allowedNamespaces, the next resolution refuses it, and the ScaledJob goes Ready=False with no Job.
func TestClusterTriggerAuthRevokedOnNextResolution(t *testing.T) {
	cta := clusterAuth("shared", &v1alpha1.AllowedNamespaces{Names: []string{testNamespace}})
	sj := makeSJ("etl").max(10).mutate(func(sj *v1alpha1.ScaledJob) {
		sj.Spec.Triggers[0].AuthenticationRef = &v1alpha1.AuthenticationRef{Name: "shared", Kind: v1alpha1.KindClusterTriggerAuthentication}
	}).obj()
	env := newLoopEnv(t, interceptor.Funcs{}, sj, cta, secret("kubedispatch-system", "shared-creds", map[string]string{"key": "v"}))
	if _, err := env.r.resolveConfigs(context.Background(), sj); err != nil {
		t.Fatalf("allowed: %v", err)
	}
	cta.Spec.AllowedNamespaces.Names = []string{"team-b"}
	if err := env.raw.Update(context.Background(), cta); err != nil {
		t.Fatal(err)
	}
	if _, err := env.r.resolveConfigs(context.Background(), sj); !sources.IsConfigError(err) ||
		!strings.Contains(describeInvalid(err), `ClusterTriggerAuthentication "shared" does not allow namespace team-a`) {
		t.Fatalf("after the namespace was removed: %v, want a refusal", err)
	}
	env.sources.source(defaultTrigger).set(3, nil)
	env.mustReconcile("etl")
	if names := env.jobNames(); len(names) != 0 {
		t.Errorf("Jobs created through a ClusterTriggerAuthentication that does not allow the namespace: %v", names)
	}
	ready, msg := condition(env.scaledJob("etl"), v1alpha1.ConditionReady)
	if ready.Status != metav1.ConditionFalse || ready.Reason != "InvalidTrigger" ||
		!strings.Contains(msg, `spec.triggers[0].authenticationRef: ClusterTriggerAuthentication "shared" does not allow namespace team-a`) {
		t.Errorf("Ready = %+v %q, want False InvalidTrigger naming the ClusterTriggerAuthentication and the namespace", ready, msg)
	}
}

// The registry's endpoint refusal reaches status like any configuration error: Ready=False InvalidTrigger with the
// field path and the flag, a TriggerError event, and no Job.
func TestEndpointRefusalIsReadyFalse(t *testing.T) {
	sj := makeSJ("etl").max(10).mutate(func(sj *v1alpha1.ScaledJob) {
		sj.Spec.Triggers[0].Metadata = map[string]string{"endpoint": "http://127.0.0.1:9"}
	}).obj()
	env := newLoopEnv(t, interceptor.Funcs{}, sj)
	env.sources.source(defaultTrigger).set(3, nil)
	if err := env.r.Registry.RegisterEndpoints(fakeType, func(cfg sources.Config) ([]sources.EndpointUse, error) {
		return []sources.EndpointUse{{Key: "endpoint", Field: "metadata.endpoint", Host: "127.0.0.1", Port: "9", Literal: true,
			SetBy: sources.OriginNamespace, Credentials: sources.OriginAmbient}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	env.mustReconcile("etl")
	if names := env.jobNames(); len(names) != 0 {
		t.Errorf("Jobs created on a refused endpoint: %v", names)
	}
	if n := len(env.sources.builds()); n != 0 {
		t.Errorf("source built %d times on a refused endpoint, want never", n)
	}
	got := env.scaledJob("etl")
	ready, msg := condition(got, v1alpha1.ConditionReady)
	if ready.Status != metav1.ConditionFalse || ready.Reason != "InvalidTrigger" {
		t.Errorf("Ready = %+v, want False InvalidTrigger", ready)
	}
	for _, want := range []string{"spec.triggers[0].metadata.endpoint", "--allowed-endpoints", "--allow-ambient-credentials-on-custom-endpoints"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Ready message %q does not name %s", msg, want)
		}
	}
	if evs := eventsWithReason(env.drainEvents(), corev1.EventTypeWarning, ReasonTriggerError); len(evs) != 1 {
		t.Errorf("got %d TriggerError warnings, want 1: %v", len(evs), evs)
	}
	b, _ := json.Marshal(got.Status)
	if !strings.Contains(string(b), "--allowed-endpoints") {
		t.Errorf("status %s does not carry the refusal", b)
	}
}
