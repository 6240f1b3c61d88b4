package v1alpha1

// The markers below are the cluster-wide permissions the dispatcher needs; `hack/generate.sh` turns them into
// deploy/rbac/role.yaml (ClusterRole kubedispatch-manager). Each verb is one the code uses; docs/security.md
// ("RBAC") lists the whole rule set with the reason of each rule, and deploy/rbac_test.go checks the rendered
// deploy/ against it.
//
//   - ScaledJobs, TriggerAuthentications and ClusterTriggerAuthentications are read from the informer cache
//     (list, watch; never got, updated or patched: the dispatcher uses no finalizer). Status is written with update.
//     A change of a TriggerAuthentication or ClusterTriggerAuthentication (the watch) re-resolves the credentials
//     of the ScaledJobs that use it.
//   - scaledjobs/finalizers and jobs/finalizers (update): a Job's owner reference to its ScaledJob, and a message's
//     payload Secret's owner reference to its Job, set blockOwnerDeletion, which the OwnerReferencesPermissionEnforcement
//     admission plugin allows only to who may update the owner's finalizers.
//   - Jobs: created, listed and watched (cache), got from the API server (a create whose answer was lost), patched
//     (message outcome annotation) and deleted (history, rollout). Pods are only listed and watched (pending Jobs).
//   - Namespaces are listed and watched to apply a ClusterTriggerAuthentication's allowedNamespaces.namespaceSelector
//     (a label change re-resolves the credentials of the namespace's ScaledJobs that use one).
//   - Events about ScaledJobs go through the events.k8s.io API (create, and patch for a repeated event).
//   - TokenReviews and SubjectAccessReviews (create) authenticate and authorize callers of the HTTPS /metrics.
//
// Not here, on purpose: Secrets (get, create) are granted by deploy/rbac-extra/secrets_role.yaml, so that the
// component deploy/components/namespaced-secrets can replace them with a Role per namespace; the leader-election
// Lease and the core Events about it are a Role in the dispatcher's own namespace
// (deploy/rbac-extra/leader_election_role.yaml).
//
// +kubebuilder:rbac:groups=kubedispatch.io,resources=scaledjobs,verbs=list;watch
// +kubebuilder:rbac:groups=kubedispatch.io,resources=scaledjobs/status,verbs=update
// +kubebuilder:rbac:groups=kubedispatch.io,resources=scaledjobs/finalizers,verbs=update
// +kubebuilder:rbac:groups=kubedispatch.io,resources=triggerauthentications;clustertriggerauthentications,verbs=list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete;patch
// +kubebuilder:rbac:groups=batch,resources=jobs/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
