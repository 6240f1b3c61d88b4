package v1alpha1

// The markers below are the permissions the dispatcher needs; `hack/generate.sh` turns them into
// deploy/rbac/role.yaml (ClusterRole kubedispatch-manager).
//
// The dispatcher reads ScaledJobs and writes their status; reads TriggerAuthentications and
// ClusterTriggerAuthentications, and gets the Secrets they reference (by name only: it never lists or watches
// Secrets); reads Namespaces to apply a ClusterTriggerAuthentication's allowedNamespaces.namespaceSelector; creates
// and deletes the Jobs it dispatches and reads their pods to tell pending Jobs from running ones; records Events; and
// holds a Lease for leader election.
//
// +kubebuilder:rbac:groups=kubedispatch.io,resources=scaledjobs,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=kubedispatch.io,resources=scaledjobs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=kubedispatch.io,resources=triggerauthentications;clustertriggerauthentications,verbs=get;list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete
