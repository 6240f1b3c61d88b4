package dispatch

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/sources"
)

// namespaceAllowed decides whether a ClusterTriggerAuthentication named name, whose spec.allowedNamespaces is
// allowed, lets the ScaledJobs of namespace (labelled nsLabels) use it: namespace is listed in names or matched by
// namespaceSelector. An unset or empty allowedNamespaces allows no namespace. A refusal or an invalid selector is a
// *sources.ConfigError on authenticationRef that names the ClusterTriggerAuthentication and the namespace.
func namespaceAllowed(name string, allowed *v1alpha1.AllowedNamespaces, namespace string, nsLabels map[string]string) error {
	if allowed == nil || (len(allowed.Names) == 0 && allowed.NamespaceSelector == nil) {
		return sources.ConfigErrorf("authenticationRef",
			"ClusterTriggerAuthentication %q allows no namespace (its spec.allowedNamespaces is empty), so namespace %s may not use it: "+
				"ask the platform team to list %s in its spec.allowedNamespaces.names or to match it with spec.allowedNamespaces.namespaceSelector",
			name, namespace, namespace)
	}
	if slices.Contains(allowed.Names, namespace) {
		return nil
	}
	if allowed.NamespaceSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(allowed.NamespaceSelector)
		if err != nil {
			return sources.ConfigErrorf("authenticationRef",
				"ClusterTriggerAuthentication %q has an invalid spec.allowedNamespaces.namespaceSelector: %v", name, err)
		}
		if sel.Matches(labels.Set(nsLabels)) {
			return nil
		}
	}
	return sources.ConfigErrorf("authenticationRef",
		"ClusterTriggerAuthentication %q does not allow namespace %s: it is not in spec.allowedNamespaces.names and its labels do not "+
			"match spec.allowedNamespaces.namespaceSelector; ask the platform team to allow it, or use a TriggerAuthentication in %s",
		name, namespace, namespace)
}

// checkClusterAuthNamespace applies namespaceAllowed to the ScaledJob's namespace, reading the Namespace's labels
// (from the cache) only when the selector needs them.
func (r *Reconciler) checkClusterAuthNamespace(ctx context.Context, cta *v1alpha1.ClusterTriggerAuthentication, namespace string) error {
	var nsLabels map[string]string
	a := cta.Spec.AllowedNamespaces
	if a != nil && a.NamespaceSelector != nil && !slices.Contains(a.Names, namespace) {
		var ns corev1.Namespace
		err := r.Client.Get(ctx, types.NamespacedName{Name: namespace}, &ns)
		switch {
		case apierrors.IsNotFound(err): // being deleted: no labels
		case err != nil:
			return fmt.Errorf("reading Namespace %s: %w", namespace, err)
		default:
			nsLabels = ns.Labels
		}
	}
	return namespaceAllowed(cta.Name, a, namespace, nsLabels)
}
