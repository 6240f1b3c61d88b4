package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Values of PodIdentity.Provider.
const (
	// ProviderNone uses no pod identity: credentials come from secretTargetRef or env.
	ProviderNone = "none"
	// ProviderAWS uses the dispatcher's AWS identity (IRSA or EKS Pod Identity), optionally assuming roleArn.
	ProviderAWS = "aws"
	// ProviderGCP uses the dispatcher's GKE Workload Identity.
	ProviderGCP = "gcp"
	// ProviderAzureWorkload uses the dispatcher's Azure Workload Identity.
	ProviderAzureWorkload = "azure-workload"
)

// TriggerAuthenticationSpec says where a trigger's credentials come from. Field names match KEDA's
// TriggerAuthentication for the sources supported here.
type TriggerAuthenticationSpec struct {
	// secretTargetRef sets trigger parameters from keys of Secrets. For a TriggerAuthentication the Secrets are
	// read from its own namespace; for a ClusterTriggerAuthentication, from the dispatcher's namespace.
	// +optional
	// +listType=atomic
	SecretTargetRef []SecretTargetRef `json:"secretTargetRef,omitempty"`

	// env sets trigger parameters from environment variables declared on a container of the ScaledJob's
	// jobTargetRef.template.
	// +optional
	// +listType=atomic
	Env []AuthEnvironment `json:"env,omitempty"`

	// podIdentity authenticates with the cloud identity of the dispatcher's own pod instead of static secrets.
	// +optional
	PodIdentity *PodIdentity `json:"podIdentity,omitempty"`
}

// SecretTargetRef sets one trigger parameter from one key of a Secret.
type SecretTargetRef struct {
	// parameter is the trigger parameter to set, such as "awsAccessKeyID" or "connection".
	// +required
	// +kubebuilder:validation:MinLength=1
	Parameter string `json:"parameter"`

	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`

	// key within the Secret whose value is used.
	// +required
	// +kubebuilder:validation:MinLength=1
	Key string `json:"key"`
}

// AuthEnvironment sets one trigger parameter from an environment variable of the Job's pod template.
type AuthEnvironment struct {
	// parameter is the trigger parameter to set.
	// +required
	// +kubebuilder:validation:MinLength=1
	Parameter string `json:"parameter"`

	// name of the environment variable.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`

	// containerName is the container that declares the variable. Defaults to the ScaledJob's
	// envSourceContainerName, or its first container.
	// +optional
	ContainerName string `json:"containerName,omitempty"`
}

// PodIdentity selects a cloud workload identity.
type PodIdentity struct {
	// provider is "none", "aws", "gcp" or "azure-workload".
	// +required
	// +kubebuilder:validation:Enum=none;aws;gcp;azure-workload
	Provider string `json:"provider"`

	// identityId is, for "azure-workload", the client ID of the managed identity to use. When empty, the
	// identity bound to the dispatcher's service account is used.
	// +optional
	IdentityID string `json:"identityId,omitempty"`

	// roleArn is, for "aws", the ARN of an IAM role to assume with the dispatcher's identity. When empty, the
	// dispatcher's identity is used directly.
	// +optional
	RoleArn string `json:"roleArn,omitempty"`
}

// TriggerAuthentication holds the credentials of triggers in its namespace. ScaledJobs refer to it from
// spec.triggers[].authenticationRef.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=kta,categories=kubedispatch
// +kubebuilder:printcolumn:name="PodIdentity",type=string,JSONPath=`.spec.podIdentity.provider`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TriggerAuthentication struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says where the credentials come from.
	// +required
	Spec TriggerAuthenticationSpec `json:"spec"`
}

// TriggerAuthenticationList is a list of TriggerAuthentications.
//
// +kubebuilder:object:root=true
type TriggerAuthenticationList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	// items are the TriggerAuthentications.
	Items []TriggerAuthentication `json:"items"`
}

// ClusterTriggerAuthenticationSpec is a TriggerAuthenticationSpec plus the namespaces whose ScaledJobs may use it.
type ClusterTriggerAuthenticationSpec struct {
	TriggerAuthenticationSpec `json:",inline"`

	// allowedNamespaces are the namespaces whose ScaledJobs may refer to this ClusterTriggerAuthentication: those
	// listed in names and those matched by namespaceSelector. When it is unset or empty, no namespace may (unlike
	// KEDA, where every namespace may). An empty namespaceSelector ({}) matches every namespace.
	// +optional
	AllowedNamespaces *AllowedNamespaces `json:"allowedNamespaces,omitempty"`
}

// AllowedNamespaces selects namespaces by name and by label; a namespace is allowed when either selects it.
type AllowedNamespaces struct {
	// names lists namespaces by name.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	Names []string `json:"names,omitempty"`

	// namespaceSelector selects namespaces by their labels. The dispatcher reads Namespace objects to apply it.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
}

// ClusterTriggerAuthentication holds trigger credentials usable by the ScaledJobs of the namespaces it allows
// (spec.allowedNamespaces). Secrets it refers to are read from the dispatcher's namespace.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=kcta,categories=kubedispatch
// +kubebuilder:printcolumn:name="PodIdentity",type=string,JSONPath=`.spec.podIdentity.provider`
// +kubebuilder:printcolumn:name="Namespaces",type=string,JSONPath=`.spec.allowedNamespaces.names`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterTriggerAuthentication struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says where the credentials come from and which namespaces may use them.
	// +required
	Spec ClusterTriggerAuthenticationSpec `json:"spec"`
}

// ClusterTriggerAuthenticationList is a list of ClusterTriggerAuthentications.
//
// +kubebuilder:object:root=true
type ClusterTriggerAuthenticationList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	// items are the ClusterTriggerAuthentications.
	Items []ClusterTriggerAuthentication `json:"items"`
}
