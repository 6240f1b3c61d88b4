package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/cmd/kubectl-dispatch/internal/explain"
	"github.com/kubedispatch/kubedispatch/cmd/kubectl-dispatch/internal/importer"
	"github.com/kubedispatch/kubedispatch/dispatch"
	"github.com/kubedispatch/kubedispatch/sources"
	"github.com/kubedispatch/kubedispatch/sources/builtin"
)

// resourceName is how objects are named in messages, as kubectl does (<resource>.<group>/<name>).
const resourceName = "scaledjob.kubedispatch.io"

// app holds the streams and the kube flags shared by the commands.
type app struct {
	in          io.Reader
	out, errOut io.Writer

	kubeconfig string
	context    string
	namespace  string

	// newClient builds the client and returns the namespace to use; tests replace it.
	newClient func(a *app) (client.Client, string, error)
}

func newApp(in io.Reader, out, errOut io.Writer) *app {
	return &app{in: in, out: out, errOut: errOut, newClient: kubeClient}
}

// kubeClient builds a client from the kubeconfig (the --kubeconfig, --context and --namespace flags, as kubectl).
func kubeClient(a *app) (client.Client, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = a.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: a.context}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("loading kubeconfig: %w", err)
	}
	ns := a.namespace
	if ns == "" {
		if ns, _, err = cc.Namespace(); err != nil {
			return nil, "", fmt.Errorf("reading the namespace from kubeconfig: %w", err)
		}
	}
	c, err := client.New(cfg, client.Options{Scheme: newScheme()})
	if err != nil {
		return nil, "", fmt.Errorf("creating client: %w", err)
	}
	return c, ns, nil
}

// newScheme knows the built-in types and kubedispatch's.
func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	return s
}

func newRootCommand(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "kubectl-dispatch",
		Short:         "Explain, watch, import, pause and resume kubedispatch ScaledJobs",
		Long:          "kubectl dispatch explains why a kubedispatch ScaledJob creates the Jobs it does, shows them live, converts KEDA ScaledJob manifests, and pauses or resumes ScaledJobs.",
		SilenceUsage:  true,
		SilenceErrors: true,
		// Usage lines read "kubectl dispatch ...", as kubectl runs the plugin.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl dispatch"},
	}
	root.SetIn(a.in)
	root.SetOut(a.out)
	root.SetErr(a.errOut)
	f := root.PersistentFlags()
	f.StringVar(&a.kubeconfig, "kubeconfig", "", "path to the kubeconfig file to use")
	f.StringVar(&a.context, "context", "", "name of the kubeconfig context to use")
	f.StringVarP(&a.namespace, "namespace", "n", "", "namespace of the ScaledJob (default: the context's namespace)")
	root.AddCommand(newPauseCommand(a, true), newPauseCommand(a, false), newImportCommand(a), newExplainCommand(a), newWatchCommand(a))
	return root
}

// newPauseCommand builds pause (pause true) or resume.
func newPauseCommand(a *app, pause bool) *cobra.Command {
	use, short := "resume SCALEDJOB", "Remove the "+v1alpha1.AnnotationPaused+" annotation so the ScaledJob dispatches again"
	if pause {
		use, short = "pause SCALEDJOB", "Set the "+v1alpha1.AnnotationPaused+"=\"true\" annotation: no Jobs are created until resumed"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := a.newClient(a)
			if err != nil {
				return err
			}
			return setPaused(cmd.Context(), c, a.out, types.NamespacedName{Namespace: ns, Name: args[0]}, pause)
		},
	}
}

// setPaused sets or removes the pause annotation with a merge patch and says what changed.
func setPaused(ctx context.Context, c client.Client, out io.Writer, key types.NamespacedName, pause bool) error {
	var sj v1alpha1.ScaledJob
	if err := c.Get(ctx, key, &sj); err != nil {
		return fmt.Errorf("getting ScaledJob %s: %w", key, err)
	}
	old, had := sj.Annotations[v1alpha1.AnnotationPaused]
	var value any // nil removes the annotation in a merge patch
	switch {
	case pause && had && old == "true":
		_, err := fmt.Fprintf(out, "%s/%s already paused (%s=%q), no change\n", resourceName, key.Name, v1alpha1.AnnotationPaused, old)
		return err
	case pause:
		value = "true"
	case !had:
		_, err := fmt.Fprintf(out, "%s/%s is not paused (no %s annotation), no change\n", resourceName, key.Name, v1alpha1.AnnotationPaused)
		return err
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{v1alpha1.AnnotationPaused: value}}})
	if err != nil {
		return fmt.Errorf("encoding patch: %w", err)
	}
	if err := c.Patch(ctx, &sj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("patching ScaledJob %s: %w", key, err)
	}
	before := "unset"
	if had {
		before = fmt.Sprintf("%q", old)
	}
	if pause {
		_, err = fmt.Fprintf(out, "%s/%s paused (%s: %s -> \"true\")\n", resourceName, key.Name, v1alpha1.AnnotationPaused, before)
	} else {
		_, err = fmt.Fprintf(out, "%s/%s resumed (%s: %s -> unset)\n", resourceName, key.Name, v1alpha1.AnnotationPaused, before)
	}
	return err
}

func newImportCommand(a *app) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "import -f FILE",
		Short: "Convert KEDA ScaledJob, TriggerAuthentication and ClusterTriggerAuthentication manifests to kubedispatch ones",
		Long: "import reads keda.sh/v1alpha1 manifests (multi-document YAML or List objects, '-' for stdin) and prints the " +
			"kubedispatch.io/v1alpha1 objects on stdout, each with comments naming the differences from KEDA that apply. " +
			"If any object cannot be converted, nothing is printed on stdout and the command exits 1.",
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			var r io.Reader = a.in
			if file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return fmt.Errorf("opening manifests: %w", err)
				}
				defer f.Close()
				r = f
			}
			out, err := importer.Convert(r)
			if err != nil {
				return err
			}
			_, err = a.out.Write(out)
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "file with the KEDA manifests, or - for stdin")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

func newExplainCommand(a *app) *cobra.Command {
	var whatIf, output, clusterAuthNamespace, allowedEndpoints string
	var live, allowAmbient bool
	cmd := &cobra.Command{
		Use:   "explain SCALEDJOB",
		Short: "Explain, step by step, how many Jobs the ScaledJob creates now and why",
		Long: "explain reads the ScaledJob (its spec and the last trigger readings in its status), its Jobs and their pods, " +
			"and prints the dispatcher's decision step by step. --what-if recomputes it with changed settings, e.g. " +
			"--what-if strategy=eager,maxReplicaCount=50 (pendingPodConditions takes a ';'-separated list).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "" && output != "yaml" && output != "json" {
				return fmt.Errorf("unknown output format %q: use yaml or json", output)
			}
			var w explain.WhatIf
			if whatIf != "" {
				var err error
				if w, err = explain.ParseWhatIf(whatIf); err != nil {
					return err
				}
			}
			c, ns, err := a.newClient(a)
			if err != nil {
				return err
			}
			in, err := readInput(cmd.Context(), c, types.NamespacedName{Namespace: ns, Name: args[0]})
			if err != nil {
				return err
			}
			if live {
				if in.Live, err = readLive(cmd.Context(), c, in, clusterAuthNamespace, allowedEndpoints, allowAmbient); err != nil {
					return err
				}
			}
			var result any
			if whatIf == "" {
				result = explain.Explain(in)
			} else if result, err = explain.Compare(in, w); err != nil {
				return err
			}
			return printResult(a.out, output, result)
		},
	}
	cmd.Flags().StringVar(&whatIf, "what-if", "", "recompute with changed settings: key=value,... (strategy, maxReplicaCount, minReplicaCount, multipleScalersCalculation, customScalingQueueLengthDeduction, customScalingRunningJobPercentage, pendingPodConditions, paused)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: yaml or json (default: text)")
	cmd.Flags().BoolVar(&live, "live", false, "read the triggers now with the ScaledJob's credentials (your kubeconfig must be allowed to read its TriggerAuthentications and Secrets; pod identity uses your own ambient credentials) instead of the last readings in status")
	cmd.Flags().StringVar(&clusterAuthNamespace, "cluster-auth-namespace", "kubedispatch-system", "with --live: the namespace ClusterTriggerAuthentication Secrets are read from (the dispatcher's)")
	cmd.Flags().StringVar(&allowedEndpoints, "allowed-endpoints", "", "with --live: host patterns a trigger's custom endpoint may name, as the dispatcher's flag of that name (empty: none)")
	cmd.Flags().BoolVar(&allowAmbient, "allow-ambient-credentials-on-custom-endpoints", false, "with --live: as the dispatcher's flag of that name")
	return cmd
}

// readLive reads the ScaledJob's triggers once, as the dispatcher's pollers do, with the same registry, endpoint
// policy and credential resolution.
func readLive(ctx context.Context, c client.Client, in explain.Input, clusterAuthNamespace, allowedEndpoints string, allowAmbient bool) ([]dispatch.LiveReading, error) {
	allowed, err := sources.ParseHostPatterns(allowedEndpoints)
	if err != nil {
		return nil, fmt.Errorf("parsing --allowed-endpoints: %w", err)
	}
	registry, err := builtin.Registry(sources.WithEndpointPolicy(sources.EndpointPolicy{Allowed: allowed, AllowAmbientCredentials: allowAmbient}))
	if err != nil {
		return nil, err
	}
	r := &dispatch.Reconciler{Client: c, APIReader: c, Registry: registry, ClusterAuthNamespace: clusterAuthNamespace}
	return r.ReadTriggersNow(ctx, in.ScaledJob, in.Now), nil
}

// readInput reads the ScaledJob, the Jobs labelled for it and their pods (which carry the same label).
func readInput(ctx context.Context, c client.Client, key types.NamespacedName) (explain.Input, error) {
	var sj v1alpha1.ScaledJob
	if err := c.Get(ctx, key, &sj); err != nil {
		return explain.Input{}, fmt.Errorf("getting ScaledJob %s: %w", key, err)
	}
	sel := client.MatchingLabels{v1alpha1.LabelScaledJob: key.Name}
	var jobs batchv1.JobList
	if err := c.List(ctx, &jobs, client.InNamespace(key.Namespace), sel); err != nil {
		return explain.Input{}, fmt.Errorf("listing Jobs of %s: %w", key, err)
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(key.Namespace), sel); err != nil {
		return explain.Input{}, fmt.Errorf("listing pods of %s: %w", key, err)
	}
	in := explain.Input{ScaledJob: &sj, Jobs: jobs.Items, Pods: pods.Items, Now: time.Now()}
	// ResourceQuotas say whether the API server will refuse new Jobs; a user who may not read them gets a note.
	var quotas corev1.ResourceQuotaList
	if err := c.List(ctx, &quotas, client.InNamespace(key.Namespace)); err != nil {
		in.QuotaErr = fmt.Sprintf("ResourceQuotas of namespace %s not read (%v): a quota that blocks creation would not show here", key.Namespace, err)
	} else {
		in.Quotas = quotas.Items
	}
	return in, nil
}

// printResult prints an Explanation or a Comparison as text, YAML or JSON.
func printResult(w io.Writer, format string, result any) error {
	switch format {
	case "json":
		b, err := json.MarshalIndent(result, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding JSON: %w", err)
		}
		_, err = w.Write(append(b, '\n'))
		return err
	case "yaml":
		b, err := yaml.Marshal(result)
		if err != nil {
			return fmt.Errorf("encoding YAML: %w", err)
		}
		_, err = w.Write(b)
		return err
	}
	var buf bytes.Buffer
	var err error
	switch r := result.(type) {
	case explain.Explanation:
		err = explain.Print(&buf, r)
	case explain.Comparison:
		err = explain.PrintComparison(&buf, r)
	}
	if err != nil {
		return fmt.Errorf("printing: %w", err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}
