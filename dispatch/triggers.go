package dispatch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/sources"
)

// triggerError is a reading or configuration failure of one trigger, with the trigger's field path.
type triggerError struct {
	index int
	name  string
	err   error
}

func (e *triggerError) Error() string {
	return fmt.Sprintf("trigger %s (spec.triggers[%d]): %v", e.name, e.index, e.err)
}

func (e *triggerError) Unwrap() error { return e.err }

// resolveConfigs turns the ScaledJob's triggers into source configurations: it reads the referenced
// TriggerAuthentications and Secrets, the env values named by `<key>FromEnv` metadata and the Secret-backed files
// named by `<key>FromEnvFile` metadata. Secret values live only in the returned configs; they are never logged or
// written to status or events. A reference to something missing, a ClusterTriggerAuthentication that does not allow
// the ScaledJob's namespace, or a value over sources.MaxValueBytes is a *sources.ConfigError (permanent until fixed);
// any other API error is returned as is (transient). Each config records whose credentials it carries
// (AuthOrigin), for the endpoint policy the registry applies when it builds the source.
func (r *Reconciler) resolveConfigs(ctx context.Context, sj *v1alpha1.ScaledJob) ([]sources.Config, error) {
	cfgs := make([]sources.Config, 0, len(sj.Spec.Triggers))
	for i, t := range sj.Spec.Triggers {
		cfg := sources.Config{Index: i, Name: t.Name, Type: t.Type, Metadata: t.Metadata}
		env, files, err := r.resolveEnv(ctx, sj, t.Metadata)
		if err != nil {
			return nil, &triggerError{index: i, name: t.EffectiveName(i), err: err}
		}
		cfg.Env, cfg.EnvFiles = env, files
		if t.AuthenticationRef != nil {
			params, identity, origin, err := r.resolveAuth(ctx, sj, t.AuthenticationRef)
			if err != nil {
				return nil, &triggerError{index: i, name: t.EffectiveName(i), err: err}
			}
			cfg.AuthParams, cfg.PodIdentity, cfg.AuthOrigin = params, identity, origin
		}
		cfgs = append(cfgs, cfg)
	}
	return cfgs, nil
}

// envContainer returns the container whose env resolves `<key>FromEnv` metadata.
func envContainer(sj *v1alpha1.ScaledJob, name string) (*corev1.Container, error) {
	cs := sj.Spec.JobTargetRef.Template.Spec.Containers
	if name == "" {
		if len(cs) == 0 {
			return nil, sources.ConfigErrorf("envSourceContainerName", "the Job template has no containers")
		}
		return &cs[0], nil
	}
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i], nil
		}
	}
	return nil, sources.ConfigErrorf("envSourceContainerName", "no container named %q in jobTargetRef.template", name)
}

// resolveEnv returns the values of the env vars that metadata names through `<key>FromEnv` and `<key>FromEnvFile`
// keys, and for each `<key>FromEnvFile` variable the content of the file it names. That file is read from the
// Secret the container mounts at that path (see fileFromSecret), through the API: the dispatcher never reads a path
// of its own file system that a tenant chose.
func (r *Reconciler) resolveEnv(ctx context.Context, sj *v1alpha1.ScaledJob, metadata map[string]string) (map[string]string, map[string]string, error) {
	var wanted []string
	fileKeys := map[string]string{} // variable -> the `<key>FromEnvFile` metadata key naming it
	for k, v := range metadata {
		if v == "" {
			continue
		}
		switch {
		case strings.HasSuffix(k, "FromEnvFile"):
			wanted = append(wanted, v)
			if prev, ok := fileKeys[v]; !ok || k < prev {
				fileKeys[v] = k
			}
		case strings.HasSuffix(k, "FromEnv"):
			wanted = append(wanted, v)
		}
	}
	if len(wanted) == 0 {
		return nil, nil, nil
	}
	c, err := envContainer(sj, sj.Spec.EnvSourceContainerName)
	if err != nil {
		return nil, nil, err
	}
	env := map[string]string{}
	literal := map[string]bool{}
	for _, name := range wanted {
		for _, e := range c.Env {
			if e.Name != name {
				continue
			}
			switch {
			case e.ValueFrom == nil:
				if len(e.Value) > sources.MaxValueBytes {
					return nil, nil, sources.ConfigErrorf("envSourceContainerName",
						"env %s of container %s holds %d bytes, more than the %d a trigger value may have", name, c.Name, len(e.Value), sources.MaxValueBytes)
				}
				env[name], literal[name] = e.Value, true
			case e.ValueFrom.SecretKeyRef != nil:
				v, err := r.secretValue(ctx, sj.Namespace, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key,
					"authenticationRef", fmt.Sprintf("env %s of container %s", name, c.Name))
				if err != nil {
					return nil, nil, err
				}
				env[name], literal[name] = v, false
			default:
				return nil, nil, sources.ConfigErrorf("envSourceContainerName",
					"env %s of container %s uses a valueFrom other than a literal value or secretKeyRef", name, c.Name)
			}
		}
	}
	var files map[string]string
	names := make([]string, 0, len(fileKeys))
	for name := range fileKeys {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p, ok := env[name]
		if !ok || p == "" {
			continue // the source reports the missing variable
		}
		field := sources.MetadataField(fileKeys[name])
		shown := "(its value is not shown: it comes from a Secret)"
		if literal[name] {
			shown = strconv.Quote(p)
		}
		f, detail := fileFromSecret(&sj.Spec.JobTargetRef.Template.Spec, c, p)
		if detail != "" {
			return nil, nil, sources.ConfigErrorf(field,
				"file %s (environment variable %s of container %s) %s. The dispatcher reads such a file from the Secret volume "+
					"mounted there, through the API, and never from its own file system: mount the key from a Secret volume, or use "+
					"credentialsFromEnv with a secretKeyRef, or a TriggerAuthentication", shown, name, c.Name, detail)
		}
		v, err := r.secretValue(ctx, sj.Namespace, f.secret, f.key, field,
			fmt.Sprintf("file %s of container %s, environment variable %s", shown, c.Name, name))
		if err != nil {
			return nil, nil, err
		}
		if files == nil {
			files = map[string]string{}
		}
		files[name] = v
	}
	return env, files, nil
}

// resolveAuth reads a TriggerAuthentication or ClusterTriggerAuthentication and the Secrets it names, and returns
// the parameters, the pod identity provider and whose they are (sources.OriginNamespace or sources.OriginCluster).
// A ClusterTriggerAuthentication is used only when its spec.allowedNamespaces allows the ScaledJob's namespace,
// checked on every resolution (and the dispatcher resolves again as soon as the ClusterTriggerAuthentication or the
// namespace's labels change: see authwatch.go).
func (r *Reconciler) resolveAuth(ctx context.Context, sj *v1alpha1.ScaledJob, ref *v1alpha1.AuthenticationRef) (map[string]string, string, sources.Origin, error) {
	var spec v1alpha1.TriggerAuthenticationSpec
	secretNS := sj.Namespace
	origin := sources.OriginNamespace
	kind := ref.EffectiveKind()
	switch kind {
	case v1alpha1.KindTriggerAuthentication:
		var ta v1alpha1.TriggerAuthentication
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: sj.Namespace, Name: ref.Name}, &ta); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, "", "", sources.ConfigErrorf("authenticationRef.name", "TriggerAuthentication %q not found in namespace %s", ref.Name, sj.Namespace)
			}
			return nil, "", "", fmt.Errorf("reading TriggerAuthentication %s: %w", ref.Name, err)
		}
		spec = ta.Spec
	case v1alpha1.KindClusterTriggerAuthentication:
		var cta v1alpha1.ClusterTriggerAuthentication
		if err := r.Client.Get(ctx, types.NamespacedName{Name: ref.Name}, &cta); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, "", "", sources.ConfigErrorf("authenticationRef.name", "ClusterTriggerAuthentication %q not found", ref.Name)
			}
			return nil, "", "", fmt.Errorf("reading ClusterTriggerAuthentication %s: %w", ref.Name, err)
		}
		if err := r.checkClusterAuthNamespace(ctx, &cta, sj.Namespace); err != nil {
			return nil, "", "", err
		}
		spec = cta.Spec.TriggerAuthenticationSpec
		secretNS, origin = r.ClusterAuthNamespace, sources.OriginCluster
	default:
		return nil, "", "", sources.ConfigErrorf("authenticationRef.kind", "unsupported kind %q: want TriggerAuthentication or ClusterTriggerAuthentication", ref.Kind)
	}
	params := map[string]string{}
	for _, s := range spec.SecretTargetRef {
		v, err := r.secretValue(ctx, secretNS, s.Name, s.Key, "authenticationRef", fmt.Sprintf("%s %s, parameter %s", kind, ref.Name, s.Parameter))
		if err != nil {
			return nil, "", "", err
		}
		params[s.Parameter] = v
	}
	for _, e := range spec.Env {
		c, err := envContainer(sj, e.ContainerName)
		if err != nil {
			return nil, "", "", err
		}
		found := false
		for _, ce := range c.Env {
			if ce.Name == e.Name && ce.ValueFrom == nil {
				if len(ce.Value) > sources.MaxValueBytes {
					return nil, "", "", sources.ConfigErrorf("authenticationRef", "%s %s: env %s (parameter %s) of container %s holds %d bytes, more than the %d a trigger value may have",
						kind, ref.Name, e.Name, e.Parameter, c.Name, len(ce.Value), sources.MaxValueBytes)
				}
				params[e.Parameter], found = ce.Value, true
			}
		}
		if !found {
			return nil, "", "", sources.ConfigErrorf("authenticationRef", "%s %s: env %s (parameter %s) has no literal value in container %s", kind, ref.Name, e.Name, e.Parameter, c.Name)
		}
	}
	identity := ""
	if spec.PodIdentity != nil && spec.PodIdentity.Provider != v1alpha1.ProviderNone {
		identity = spec.PodIdentity.Provider
		if spec.PodIdentity.RoleArn != "" {
			params["awsRoleArn"] = spec.PodIdentity.RoleArn // assumed by the aws-sqs-queue source
		}
	}
	return params, identity, origin, nil
}

// secretValue reads one key of a Secret through the API (Secrets are not cached, so a rotated value is read on the
// next tick and the dispatcher needs no list/watch on Secrets). A missing Secret or key, or a value larger than
// sources.MaxValueBytes, is a *sources.ConfigError on field; the value itself is never part of an error.
func (r *Reconciler) secretValue(ctx context.Context, namespace, name, key, field, usedBy string) (string, error) {
	var s corev1.Secret
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return "", sources.ConfigErrorf(field, "Secret %q not found in namespace %s (used by %s)", name, namespace, usedBy)
		}
		return "", fmt.Errorf("reading Secret %s/%s: %w", namespace, name, err)
	}
	v, ok := s.Data[key]
	if !ok {
		return "", sources.ConfigErrorf(field, "Secret %q in namespace %s has no key %q (used by %s)", name, namespace, key, usedBy)
	}
	if len(v) > sources.MaxValueBytes {
		return "", sources.ConfigErrorf(field, "key %q of Secret %q in namespace %s holds %d bytes, more than the %d a trigger value may have (used by %s)",
			key, name, namespace, len(v), sources.MaxValueBytes, usedBy)
	}
	return string(v), nil
}

// sourceCache keeps each ScaledJob's sources between ticks and rebuilds them when their configuration (including
// resolved Secret values) changes, so clients and connections are reused and rotated Secrets are picked up.
type sourceCache struct {
	mu      sync.Mutex
	entries map[string]sourceEntry // ScaledJob namespace/name
}

type sourceEntry struct {
	hash       string
	uid        string
	generation int64
	sources    []sources.Source
}

func newSourceCache() *sourceCache { return &sourceCache{entries: map[string]sourceEntry{}} }

// current returns the sources last built for this ScaledJob generation, without resolving anything.
func (c *sourceCache) current(owner, uid string, generation int64) ([]sources.Source, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[owner]
	if !ok || e.uid != uid || e.generation != generation {
		return nil, false
	}
	return e.sources, true
}

// get returns sources for cfgs, building them with reg if the configuration changed.
func (c *sourceCache) get(ctx context.Context, reg *sources.Registry, owner, uid string, generation int64, cfgs []sources.Config) ([]sources.Source, error) {
	h, err := hashConfigs(uid, cfgs)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[owner]; ok && e.hash == h {
		e.generation = generation
		c.entries[owner] = e
		return e.sources, nil
	}
	built := make([]sources.Source, 0, len(cfgs))
	for _, cfg := range cfgs {
		s, err := reg.New(ctx, cfg)
		if err != nil {
			for _, b := range built {
				_ = b.Close()
			}
			t := v1alpha1.ScaleTrigger{Name: cfg.Name, Type: cfg.Type}
			return nil, &triggerError{index: cfg.Index, name: t.EffectiveName(cfg.Index), err: err}
		}
		built = append(built, s)
	}
	if old, ok := c.entries[owner]; ok {
		closeAll(old.sources)
	}
	c.entries[owner] = sourceEntry{hash: h, uid: uid, generation: generation, sources: built}
	return built, nil
}

// forget closes and drops a ScaledJob's sources.
func (c *sourceCache) forget(owner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[owner]; ok {
		closeAll(e.sources)
		delete(c.entries, owner)
	}
}

func closeAll(ss []sources.Source) {
	for _, s := range ss {
		_ = s.Close()
	}
}

func hashConfigs(uid string, cfgs []sources.Config) (string, error) {
	b, err := json.Marshal(cfgs) // maps marshal with sorted keys, so equal configs hash equally
	if err != nil {
		return "", fmt.Errorf("hashing trigger configuration: %w", err)
	}
	sum := sha256.Sum256(append([]byte(uid+"\n"), b...))
	return hex.EncodeToString(sum[:]), nil
}

// configField returns the spec path of a trigger configuration error, e.g. spec.triggers[0].metadata.queueURL.
func configField(err error) (string, bool) {
	var te *triggerError
	var ce *sources.ConfigError
	if !errors.As(err, &ce) {
		return "", false
	}
	if errors.As(err, &te) {
		if ce.Field == "envSourceContainerName" {
			return "spec.envSourceContainerName", true
		}
		return fmt.Sprintf("spec.triggers[%d].%s", te.index, ce.Field), true
	}
	return ce.Field, true
}

// describeInvalid renders a trigger error for status and events: for a configuration error the full spec path
// first, then what is wrong and which trigger, e.g.
// "spec.triggers[0].metadata.queueURL: is required (...) (trigger sqs)".
func describeInvalid(err error) string { return describe(err, true) }

// describe is describeInvalid, naming the trigger only when withTrigger is set (a trigger's own status entry
// already carries its name).
func describe(err error, withTrigger bool) string {
	var te *triggerError
	var ce *sources.ConfigError
	if errors.As(err, &ce) {
		if field, ok := configField(err); ok {
			if withTrigger && errors.As(err, &te) {
				return fmt.Sprintf("%s: %s (trigger %s)", field, ce.Detail, te.name)
			}
			return field + ": " + ce.Detail
		}
	}
	return err.Error()
}
