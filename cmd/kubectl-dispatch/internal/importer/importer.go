package importer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
)

// kedaAPIVersion is the API version of the KEDA objects Convert accepts.
const kedaAPIVersion = "keda.sh/v1alpha1"

// Annotations and finalizers of KEDA that Convert translates or drops.
const (
	kedaPausedAnnotation        = "autoscaling.keda.sh/paused"
	kedaExcludedLabelsAnnotaton = "scaledjob.keda.sh/job-excluded-labels"
	kedaFinalizer               = "finalizer.keda.sh"
	lastAppliedAnnotation       = "kubectl.kubernetes.io/last-applied-configuration"
)

// Kinds Convert accepts.
const (
	kindScaledJob                    = "ScaledJob"
	kindTriggerAuthentication        = v1alpha1.KindTriggerAuthentication
	kindClusterTriggerAuthentication = v1alpha1.KindClusterTriggerAuthentication
)

// SupportedTriggerTypes are the trigger types kubedispatch reads.
var supportedTriggerTypes = []string{"aws-sqs-queue", "azure-servicebus", "cron", "gcp-pubsub"}

// authSpecFields are the TriggerAuthentication spec fields kubedispatch supports; KEDA has more.
var authSpecFields = []string{"env", "podIdentity", "secretTargetRef"}

// serverFields are metadata fields the API server sets; they do not belong in a manifest to apply.
var serverFields = []string{
	"creationTimestamp", "deletionGracePeriodSeconds", "deletionTimestamp", "generation", "managedFields",
	"resourceVersion", "selfLink", "uid",
}

// object is one manifest being converted.
type object struct {
	kind      string
	namespace string
	name      string
	raw       map[string]any
	notes     []string
}

// id names the object in notes and errors, as "ScaledJob ns/name".
func (o *object) id() string {
	if o.namespace == "" {
		return o.kind + " " + o.name
	}
	return o.kind + " " + o.namespace + "/" + o.name
}

func (o *object) note(format string, args ...any) {
	o.notes = append(o.notes, fmt.Sprintf(format, args...))
}

// Convert reads multi-document YAML (or JSON) holding KEDA ScaledJobs, TriggerAuthentications and
// ClusterTriggerAuthentications, also inside List objects such as `kubectl get -o yaml` prints, and returns the
// kubedispatch.io/v1alpha1 objects as multi-document YAML, each preceded by comments naming the deliberate
// differences from KEDA that apply to it. Every converted object decodes strictly into the v1alpha1 types, and
// ScaledJobs pass Validate. On any error the output is nil; the error names every object that could not be
// converted and why.
func Convert(r io.Reader) ([]byte, error) {
	objs, readErrs, err := readObjects(r)
	if err != nil {
		return nil, err
	}
	if len(objs) == 0 && len(readErrs) == 0 {
		return nil, errors.New("reading manifests: no objects found")
	}
	refs := clusterAuthRefs(objs)
	// Every object is converted even after an error, so that one run names every problem.
	errs := readErrs
	for _, o := range objs {
		var objErrs []error
		switch o.kind {
		case kindScaledJob:
			objErrs = convertScaledJob(o)
		case kindTriggerAuthentication:
			objErrs = convertAuth(o, nil)
		case kindClusterTriggerAuthentication:
			objErrs = convertAuth(o, refs[o.name])
		}
		for _, err := range objErrs {
			errs = append(errs, fmt.Errorf("converting %s: %w", o.id(), err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var out bytes.Buffer
	for i, o := range objs {
		if i > 0 {
			out.WriteString("---\n")
		}
		b, err := yaml.Marshal(o.raw)
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", o.id(), err)
		}
		fmt.Fprintf(&out, "# %s: converted from %s\n", o.id(), kedaAPIVersion)
		for _, n := range o.notes {
			fmt.Fprintf(&out, "# - %s\n", n)
		}
		out.Write(b)
	}
	return out.Bytes(), nil
}

// readObjects splits the input into documents, expands Lists and checks that each object is a KEDA kind this
// package converts. Objects that are not are returned as errs; err is for input that cannot be parsed at all.
func readObjects(r io.Reader) (objs []*object, errs []error, err error) {
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	for doc := 1; ; doc++ {
		b, err := yr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading document %d: %w", doc, err)
		}
		j, err := yaml.YAMLToJSON(b)
		if err != nil {
			return nil, nil, fmt.Errorf("parsing document %d: %w", doc, err)
		}
		if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
			continue // empty document or comments only
		}
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			return nil, nil, fmt.Errorf("parsing document %d: not an object: %w", doc, err)
		}
		items := []map[string]any{m}
		if kind, _ := m["kind"].(string); strings.HasSuffix(kind, "List") {
			list, ok := m["items"].([]any)
			if !ok {
				return nil, nil, fmt.Errorf("parsing document %d: %s without items", doc, kind)
			}
			items = items[:0]
			for i, it := range list {
				im, ok := it.(map[string]any)
				if !ok {
					return nil, nil, fmt.Errorf("parsing document %d: items[%d] is not an object", doc, i)
				}
				items = append(items, im)
			}
		}
		for i, it := range items {
			o, err := newObject(it)
			if err != nil {
				where := fmt.Sprintf("document %d", doc)
				if len(items) > 1 || it["kind"] != m["kind"] {
					where += fmt.Sprintf(" items[%d]", i)
				}
				errs = append(errs, fmt.Errorf("reading %s: %w", where, err))
				continue
			}
			objs = append(objs, o)
		}
	}
	return objs, errs, nil
}

// newObject checks apiVersion and kind and reads the name.
func newObject(m map[string]any) (*object, error) {
	apiVersion, _ := m["apiVersion"].(string)
	kind, _ := m["kind"].(string)
	meta, _ := m["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	namespace, _ := meta["namespace"].(string)
	o := &object{kind: kind, name: name, namespace: namespace, raw: m}
	if name == "" {
		o.name = "<no name>"
	}
	switch {
	case apiVersion != kedaAPIVersion:
		return nil, fmt.Errorf("%s: apiVersion %q is not %s: only KEDA objects are converted", o.id(), apiVersion, kedaAPIVersion)
	case kind == "ScaledObject":
		return nil, fmt.Errorf("%s: ScaledObjects are not supported: they stay with KEDA", o.id())
	case kind != kindScaledJob && kind != kindTriggerAuthentication && kind != kindClusterTriggerAuthentication:
		return nil, fmt.Errorf("%s: kind %q is not supported (supported: ScaledJob, TriggerAuthentication, ClusterTriggerAuthentication)", o.id(), kind)
	case name == "":
		return nil, fmt.Errorf("%s: metadata.name is required", o.id())
	}
	if kind == kindClusterTriggerAuthentication {
		o.namespace = ""
	}
	return o, nil
}

// authRefs are the ScaledJobs in the input that refer to one ClusterTriggerAuthentication.
type authRefs struct {
	namespaces  []string // sorted, unique
	noNamespace []string // ScaledJobs without metadata.namespace
}

// clusterAuthRefs finds, per ClusterTriggerAuthentication name, the ScaledJobs referring to it.
func clusterAuthRefs(objs []*object) map[string]*authRefs {
	refs := map[string]*authRefs{}
	for _, o := range objs {
		if o.kind != kindScaledJob {
			continue
		}
		spec, _ := o.raw["spec"].(map[string]any)
		triggers, _ := spec["triggers"].([]any)
		for _, t := range triggers {
			tm, _ := t.(map[string]any)
			ref, _ := tm["authenticationRef"].(map[string]any)
			if kind, _ := ref["kind"].(string); kind != kindClusterTriggerAuthentication {
				continue
			}
			name, _ := ref["name"].(string)
			r := refs[name]
			if r == nil {
				r = &authRefs{}
				refs[name] = r
			}
			if o.namespace == "" {
				r.noNamespace = appendUnique(r.noNamespace, o.name)
			} else {
				r.namespaces = appendUnique(r.namespaces, o.namespace)
			}
		}
	}
	for _, r := range refs {
		sort.Strings(r.namespaces)
		sort.Strings(r.noNamespace)
	}
	return refs
}

func appendUnique(list []string, v string) []string {
	if slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

// convertMeta sets the apiVersion, drops what the API server sets and translates KEDA's annotations.
func convertMeta(o *object) {
	o.raw["apiVersion"] = v1alpha1.GroupVersion.String()
	delete(o.raw, "status")
	meta, _ := o.raw["metadata"].(map[string]any)
	for _, f := range serverFields {
		delete(meta, f)
	}
	if o.kind == kindClusterTriggerAuthentication {
		delete(meta, "namespace")
	}
	if fins, ok := meta["finalizers"].([]any); ok {
		kept := slices.DeleteFunc(fins, func(f any) bool { return f == kedaFinalizer })
		if len(kept) == 0 {
			delete(meta, "finalizers")
		} else {
			meta["finalizers"] = kept
		}
	}
	ann, _ := meta["annotations"].(map[string]any)
	delete(ann, lastAppliedAnnotation)
	if v, ok := ann[kedaPausedAnnotation]; ok {
		delete(ann, kedaPausedAnnotation)
		ann[v1alpha1.AnnotationPaused] = v
		s, _ := v.(string)
		if s == "" {
			o.note("annotation %s is now %s; its empty value does not pause here (KEDA: it pauses)", kedaPausedAnnotation, v1alpha1.AnnotationPaused)
		} else {
			o.note("annotation %s is now %s; while paused, history pruning continues and the status shows what would be created (KEDA stops both)", kedaPausedAnnotation, v1alpha1.AnnotationPaused)
		}
	}
	if _, ok := ann[kedaExcludedLabelsAnnotaton]; ok {
		delete(ann, kedaExcludedLabelsAnnotaton)
		o.note("annotation %s is not supported and was removed: every ScaledJob label is copied to its Jobs", kedaExcludedLabelsAnnotaton)
	}
	if ann != nil && len(ann) == 0 {
		delete(meta, "annotations")
	}
}

// convertScaledJob converts one ScaledJob in place and returns every reason it cannot be.
func convertScaledJob(o *object) []error {
	convertMeta(o)
	spec, ok := o.raw["spec"].(map[string]any)
	if !ok {
		return []error{errors.New("spec is required")}
	}
	var errs []error

	// Rollout: KEDA's deprecated rolloutStrategy wins over rollout.strategy; unset means immediate in KEDA.
	rollout, _ := spec["rollout"].(map[string]any)
	if old, ok := spec["rolloutStrategy"]; ok {
		delete(spec, "rolloutStrategy")
		if s, _ := old.(string); s != "" {
			if rollout == nil {
				rollout = map[string]any{}
				spec["rollout"] = rollout
			}
			rollout["strategy"] = s
			o.note("spec.rolloutStrategy (deprecated in KEDA) is now spec.rollout.strategy: %s", s)
		}
	}
	switch s, _ := rollout["strategy"].(string); s {
	case "":
		o.note("spec.rollout.strategy is unset: here that means gradual (Jobs of an older spec run to completion); KEDA deletes them on every spec change. Set rollout.strategy: immediate to keep KEDA's behaviour")
	case v1alpha1.RolloutImmediate:
		o.note("rollout immediate never deletes Jobs without the kubedispatch.io/generation annotation (KEDA deletes Jobs without its generation annotation)")
	}

	// Replica bounds.
	minC, minSet, err := intField(spec, "minReplicaCount")
	if err != nil {
		errs = append(errs, err)
	}
	maxC, maxSet, err := intField(spec, "maxReplicaCount")
	if err != nil {
		errs = append(errs, err)
	}
	switch {
	case minSet && maxSet && minC > maxC:
		errs = append(errs, fmt.Errorf("spec.minReplicaCount %d exceeds spec.maxReplicaCount %d: kubedispatch refuses this (KEDA clamps min to max and runs up to %d Jobs); lower minReplicaCount or raise maxReplicaCount", minC, maxC, 2*maxC))
	case minSet && minC > 0 && !maxSet:
		o.note("spec.maxReplicaCount is unset: it defaults to 100 Jobs in total, minReplicaCount included (KEDA: 100 plus minReplicaCount = %d)", 100+minC)
	}

	// Custom strategy with an unparsable percentage silently runs default in KEDA; here it is invalid.
	if ss, ok := spec["scalingStrategy"].(map[string]any); ok {
		if s, _ := ss["strategy"].(string); s == v1alpha1.StrategyCustom {
			p, _ := ss["customScalingRunningJobPercentage"].(string)
			if _, err := strconv.ParseFloat(p, 64); err != nil {
				ss["strategy"] = v1alpha1.StrategyDefault
				delete(ss, "customScalingRunningJobPercentage")
				delete(ss, "customScalingQueueLengthDeduction")
				o.note("spec.scalingStrategy.strategy custom with customScalingRunningJobPercentage %q: KEDA silently runs the default strategy, so it is converted to default (here custom needs a decimal in [0, 1])", p)
			}
		}
	}

	errs = append(errs, convertTriggers(o, spec)...)
	var sj v1alpha1.ScaledJob
	if err := strictDecode(o.raw, &sj); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errs
	}
	if fe := sj.Validate(); len(fe) > 0 {
		return []error{fmt.Errorf("kubedispatch would refuse it: %w", fe.ToAggregate())}
	}

	o.note("failed Jobs are pruned oldest first by their Failed condition time (KEDA: by completionTime, which failed Jobs lack, so effectively in list order)")
	o.note("Jobs and pods are labelled %s=%s (KEDA: scaledjob.keda.sh/name); only Jobs this ScaledJob owns are counted, so let KEDA's Jobs finish first (docs/keda-migration.md §3)", v1alpha1.LabelScaledJob, o.name)

	return nil
}

// convertTriggers checks every trigger: its type must be supported, and KEDA-only settings are refused or noted.
func convertTriggers(o *object, spec map[string]any) []error {
	triggers, _ := spec["triggers"].([]any)
	var errs []error
	for i, t := range triggers {
		tm, ok := t.(map[string]any)
		if !ok {
			errs = append(errs, fmt.Errorf("spec.triggers[%d] is not an object", i))
			continue
		}
		typ, _ := tm["type"].(string)
		path := fmt.Sprintf("spec.triggers[%d] (type %q)", i, typ)
		if !slices.Contains(supportedTriggerTypes, typ) {
			errs = append(errs, fmt.Errorf("%s: trigger type %q is not supported (supported: %s)", path, typ, strings.Join(supportedTriggerTypes, ", ")))
			continue
		}
		if mt, _ := tm["metricType"].(string); mt != "" {
			errs = append(errs, fmt.Errorf("%s: metricType %q must be removed: a ScaledJob always divides the backlog by the per-Job target (KEDA refuses it too)", path, mt))
		}
		if uc, _ := tm["useCachedMetrics"].(bool); uc {
			o.note("%s: useCachedMetrics is ignored", path)
		}
		md, _ := tm["metadata"].(map[string]any)
		if typ == "aws-sqs-queue" {
			if _, ok := md["identityOwner"]; ok {
				errs = append(errs, fmt.Errorf("%s: metadata.identityOwner is not supported: the dispatcher reads the queue with its own identity or a role it assumes (podIdentity.roleArn)", path))
			}
		}
		for _, k := range []string{"awsEndpoint", "monitoringEndpoint", "endpointSuffix"} {
			if _, ok := md[k]; ok {
				o.note("%s: metadata.%s is a custom endpoint: it must match the dispatcher's --allowed-endpoints and gets only credentials of the ScaledJob's own namespace (docs/security.md)", path, k)
			}
		}
	}
	return errs
}

// convertAuth converts a TriggerAuthentication or, with refs, a ClusterTriggerAuthentication in place.
func convertAuth(o *object, refs *authRefs) []error {
	convertMeta(o)
	spec, _ := o.raw["spec"].(map[string]any)
	if spec == nil {
		spec = map[string]any{}
		o.raw["spec"] = spec
	}
	var errs []error
	keys := make([]string, 0, len(spec))
	for k := range spec {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !slices.Contains(authSpecFields, k) {
			errs = append(errs, fmt.Errorf("spec.%s is not supported (supported: %s); use secretTargetRef, for example with a Secret synced by External Secrets", k, strings.Join(authSpecFields, ", ")))
		}
	}
	if pi, ok := spec["podIdentity"].(map[string]any); ok {
		switch p, _ := pi["provider"].(string); p {
		case "aws-eks", "aws-kiam", "azure":
			errs = append(errs, fmt.Errorf("spec.podIdentity.provider %q is a legacy KEDA provider and not supported: use aws or azure-workload", p))
		case v1alpha1.ProviderAzureWorkload:
			if id, _ := pi["identityId"].(string); id != "" {
				o.note("spec.podIdentity.identityId is accepted but not applied yet: the identity bound to the dispatcher's ServiceAccount is used")
			}
		}
		if _, ok := pi["identityOwner"]; ok {
			errs = append(errs, errors.New("spec.podIdentity.identityOwner is not supported: the dispatcher always reads with its own identity"))
		}
	}
	if _, ok := spec["env"]; ok {
		o.note("spec.env takes literal env values of the Job's container only (KEDA also resolves references)")
	}
	if o.kind == kindClusterTriggerAuthentication {
		if _, ok := spec["secretTargetRef"]; ok {
			o.note("Secrets of spec.secretTargetRef are read from the dispatcher's namespace (kubedispatch-system), not KEDA's: copy them there")
		}
		convertAllowedNamespaces(o, spec, refs)
	}
	if len(errs) > 0 {
		return errs // unsupported fields would only be reported again by the strict decode
	}
	var err error
	if o.kind == kindClusterTriggerAuthentication {
		err = strictDecode(o.raw, &v1alpha1.ClusterTriggerAuthentication{})
	} else {
		err = strictDecode(o.raw, &v1alpha1.TriggerAuthentication{})
	}
	if err != nil {
		return []error{err}
	}
	return nil
}

// convertAllowedNamespaces sets spec.allowedNamespaces of a ClusterTriggerAuthentication to the namespaces of the
// ScaledJobs in the input that refer to it. KEDA lets every namespace use it; here unset means none.
func convertAllowedNamespaces(o *object, spec map[string]any, refs *authRefs) {
	if _, ok := spec["allowedNamespaces"]; ok {
		return // already written for kubedispatch
	}
	if refs != nil && len(refs.namespaces) > 0 {
		names := make([]any, len(refs.namespaces))
		for i, n := range refs.namespaces {
			names[i] = n
		}
		spec["allowedNamespaces"] = map[string]any{"names": names}
		o.note("spec.allowedNamespaces is new and set to the namespaces of the ScaledJobs in the input that refer to it (%s); KEDA lets every namespace use it, here only those listed or selected may", strings.Join(refs.namespaces, ", "))
	} else {
		o.note("spec.allowedNamespaces is left unset because no ScaledJob in the input with a namespace refers to it: nobody can use it until you set it (KEDA lets every namespace use it)")
	}
	if refs != nil && len(refs.noNamespace) > 0 {
		o.note("ScaledJob %s refers to it without metadata.namespace: add the namespace it is applied in to spec.allowedNamespaces.names", strings.Join(refs.noNamespace, ", "))
	}
}

// intField reads an integer field of spec; ok is false when it is absent.
func intField(spec map[string]any, key string) (v int64, ok bool, err error) {
	raw, ok := spec[key]
	if !ok || raw == nil {
		return 0, false, nil
	}
	n, isNum := raw.(json.Number)
	if !isNum {
		return 0, true, fmt.Errorf("spec.%s: %v is not an integer", key, raw)
	}
	v, err = n.Int64()
	if err != nil {
		return 0, true, fmt.Errorf("spec.%s: %v is not an integer", key, raw)
	}
	return v, true, nil
}

// strictDecode decodes m into obj, refusing unknown and duplicate fields.
func strictDecode(m map[string]any, obj any) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding: %w", err)
	}
	strict, err := sigsjson.UnmarshalStrict(b, obj)
	if err != nil {
		return fmt.Errorf("malformed field: %w", err)
	}
	if len(strict) > 0 {
		return fmt.Errorf("not supported by kubedispatch: %w", errors.Join(strict...))
	}
	return nil
}
