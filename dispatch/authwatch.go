package dispatch

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/dispatch/internal/index"
)

// Credentials follow their TriggerAuthentications and ClusterTriggerAuthentications: an edit, creation or deletion
// of one, or a change of a namespace's labels that changes what a ClusterTriggerAuthentication's
// allowedNamespaces.namespaceSelector allows, makes every ScaledJob that uses it resolve its credentials again at
// once (its poller, or in message mode its receiver, is rebuilt as after a refused key), instead of at the next
// --secret-refresh-interval. A namespace that is no longer allowed so loses the shared credentials within about a
// second. The ScaledJobs are found through the index on their authenticationRefs (internal/index), never by
// listing every ScaledJob.

// scaledJobsUsing lists the ScaledJobs whose triggers name the TriggerAuthentication or ClusterTriggerAuthentication
// (kind) name; a TriggerAuthentication's only in its namespace, a ClusterTriggerAuthentication's in namespace, or in
// every namespace when namespace is "".
func (r *Reconciler) scaledJobsUsing(ctx context.Context, kind, namespace, name string) ([]types.NamespacedName, error) {
	opts := []client.ListOption{index.UsingClusterTriggerAuthentication(name)}
	if kind == v1alpha1.KindTriggerAuthentication {
		opts = []client.ListOption{index.UsingTriggerAuthentication(name)}
	}
	if namespace != "" {
		opts = append(opts, client.InNamespace(namespace))
	}
	var list v1alpha1.ScaledJobList
	if err := r.Client.List(ctx, &list, opts...); err != nil {
		return nil, fmt.Errorf("listing the ScaledJobs that use %s %s: %w", kind, name, err)
	}
	out := make([]types.NamespacedName, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, types.NamespacedName{Namespace: list.Items[i].Namespace, Name: list.Items[i].Name})
	}
	return out, nil
}

// reresolve makes each ScaledJob resolve its credentials again at once: its poller reads with the new
// configuration (or stores the refusal), or in message mode its loop builds the receiver again, and either then
// wakes it. It returns the ScaledJobs that have neither a poller nor a message loop (none started yet), to be
// enqueued instead: their first tick resolves anyway.
func (r *Reconciler) reresolve(sjs []types.NamespacedName) []reconcile.Request {
	var idle []reconcile.Request
	for _, nn := range sjs {
		key := nn.String()
		polled := r.pollers.Reresolve(key)
		received := r.messages.Rebuild(key)
		if !polled && !received {
			idle = append(idle, reconcile.Request{NamespacedName: nn})
		}
	}
	return idle
}

// authChanged is the event handler of TriggerAuthentications (kind KindTriggerAuthentication) and
// ClusterTriggerAuthentications: it re-resolves the credentials of the ScaledJobs that use the object.
func (r *Reconciler) authChanged(kind string) func(ctx context.Context, o client.Object) []reconcile.Request {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		log := logr.FromContextOrDiscard(ctx)
		sjs, err := r.scaledJobsUsing(ctx, kind, o.GetNamespace(), o.GetName())
		if err != nil {
			// Only a cache read, which does not fail once the index is registered; the periodic resolution
			// (--secret-refresh-interval) remains the fallback.
			log.Error(err, "Could not find the ScaledJobs to resolve again", "kind", kind, "object", client.ObjectKeyFromObject(o))
			return nil
		}
		if len(sjs) == 0 {
			return nil
		}
		log.Info("Credentials changed: resolving them again", "kind", kind, "name", o.GetName(), "namespace", o.GetNamespace(),
			"scaledJobs", len(sjs))
		return r.reresolve(sjs)
	}
}

// namespaceRelabelled is the update handler of Namespaces: when the labels change what a ClusterTriggerAuthentication's
// namespaceSelector allows, the ScaledJobs of that namespace that use it resolve their credentials again.
func (r *Reconciler) namespaceRelabelled(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	if e.ObjectOld == nil || e.ObjectNew == nil || maps.Equal(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) {
		return
	}
	for _, req := range r.relabelled(ctx, e.ObjectNew.GetName(), e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) {
		q.Add(req)
	}
}

// relabelled re-resolves the ScaledJobs of namespace whose ClusterTriggerAuthentication's decision changes with the
// namespace's labels going from before to after, and returns those to enqueue (see reresolve).
func (r *Reconciler) relabelled(ctx context.Context, namespace string, before, after map[string]string) []reconcile.Request {
	log := logr.FromContextOrDiscard(ctx)
	var ctas v1alpha1.ClusterTriggerAuthenticationList
	if err := r.Client.List(ctx, &ctas); err != nil {
		log.Error(err, "Could not list the ClusterTriggerAuthentications after a namespace's labels changed", "namespace", namespace)
		return nil
	}
	var idle []reconcile.Request
	for _, name := range relabelAffects(ctas.Items, namespace, before, after) {
		sjs, err := r.scaledJobsUsing(ctx, v1alpha1.KindClusterTriggerAuthentication, namespace, name)
		if err != nil {
			log.Error(err, "Could not find the ScaledJobs to resolve again", "namespace", namespace, "clusterTriggerAuthentication", name)
			continue
		}
		if len(sjs) == 0 {
			continue
		}
		log.Info("Namespace labels changed what a ClusterTriggerAuthentication allows: resolving again",
			"namespace", namespace, "clusterTriggerAuthentication", name, "scaledJobs", len(sjs))
		idle = append(idle, r.reresolve(sjs)...)
	}
	return idle
}

// relabelAffects returns, sorted, the names of the ClusterTriggerAuthentications among ctas that decide differently
// on namespace (namespaceAllowed) with its labels before and after the change.
func relabelAffects(ctas []v1alpha1.ClusterTriggerAuthentication, namespace string, before, after map[string]string) []string {
	var out []string
	for i := range ctas {
		a := ctas[i].Spec.AllowedNamespaces
		if a == nil || a.NamespaceSelector == nil {
			continue // decided by name only
		}
		was := namespaceAllowed(ctas[i].Name, a, namespace, before) == nil
		is := namespaceAllowed(ctas[i].Name, a, namespace, after) == nil
		if was != is {
			out = append(out, ctas[i].Name)
		}
	}
	slices.Sort(out)
	return out
}

// authHandler turns the events of TriggerAuthentications or ClusterTriggerAuthentications into one changed call
// each, with log in its context: a creation (not those of the initial list, which the first resolutions read
// anyway), a spec change (a new generation: a label or annotation edit changes no credential) and a deletion.
func authHandler(log logr.Logger, changed func(ctx context.Context, o client.Object) []reconcile.Request) handler.Funcs {
	enqueue := func(ctx context.Context, o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		for _, req := range changed(logr.NewContext(ctx, log), o) {
			q.Add(req)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if !e.IsInInitialList {
				enqueue(ctx, e.Object, q)
			}
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() {
				enqueue(ctx, e.ObjectNew, q)
			}
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, e.Object, q)
		},
	}
}

// namespaceHandler turns Namespace label changes into namespaceRelabelled calls, with log in their context (a new
// namespace has no ScaledJobs yet; a deleted one takes its ScaledJobs with it).
func (r *Reconciler) namespaceHandler(log logr.Logger) handler.Funcs {
	return handler.Funcs{
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.namespaceRelabelled(logr.NewContext(ctx, log), e, q)
		},
	}
}
