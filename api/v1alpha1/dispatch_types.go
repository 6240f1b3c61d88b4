package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Dispatch modes.
const (
	// ModeCount counts pending work and creates Jobs that fetch it themselves (KEDA's ScaledJob).
	ModeCount = "count"
	// ModeMessage receives each message in the dispatcher and binds it to exactly one Job.
	ModeMessage = "message"
)

// Message metadata a parameter can read (ParameterSource.Metadata).
const (
	MetadataMessageID       = "messageId"
	MetadataDeliveryAttempt = "deliveryAttempt"
	MetadataEnqueuedAt      = "enqueuedAt"
	MetadataQueue           = "queue"
)

// Defaults and bounds of spec.dispatch.
const (
	// DefaultMaxDeliveries is how many Jobs a message gets before it is dead-lettered.
	DefaultMaxDeliveries = 3
	// MaxMaxDeliveries bounds maxDeliveries.
	MaxMaxDeliveries = 100
	// DefaultPayloadMountPath is where the message body's directory is mounted in every container.
	DefaultPayloadMountPath = "/var/run/kubedispatch/message"
	// PayloadFile is the body's file name inside the mount path.
	PayloadFile = "body"
	// PayloadVolume is the name of the Secret volume that holds the body; templates must not use it.
	PayloadVolume = "kubedispatch-message"
	// MaxParameters bounds spec.dispatch.parameters.
	MaxParameters = 64
)

// Labels, annotations and environment variables of message-mode Jobs.
const (
	// LabelMessage on a message-mode Job (and its pods) is the hash of the message's identity (queue and
	// message id): every attempt of one message carries the same value.
	LabelMessage = "kubedispatch.io/message"
	// AnnotationMessageID is the queue's id of the message.
	AnnotationMessageID = "kubedispatch.io/message-id"
	// AnnotationQueue is the queue the message came from.
	AnnotationQueue = "kubedispatch.io/queue"
	// AnnotationDelivery is the attempt: 1 for the message's first Job, 2 for its second, ...
	AnnotationDelivery = "kubedispatch.io/delivery"
	// AnnotationEnqueuedAt is when the queue received the message (RFC 3339).
	AnnotationEnqueuedAt = "kubedispatch.io/enqueued-at"
	// AnnotationMessageOutcome is set on a Job once its message's fate is settled on the queue: "acked",
	// "released" or "dead-lettered". Until then the Job is kept whatever the history limits say.
	AnnotationMessageOutcome = "kubedispatch.io/message-outcome"

	EnvMessageID   = "KUBEDISPATCH_MESSAGE_ID"
	EnvMessagePath = "KUBEDISPATCH_MESSAGE_PATH"
	EnvDelivery    = "KUBEDISPATCH_DELIVERY"
	EnvQueue       = "KUBEDISPATCH_QUEUE"
	EnvEnqueuedAt  = "KUBEDISPATCH_ENQUEUED_AT"
)

// Values of AnnotationMessageOutcome.
const (
	OutcomeAcked        = "acked"
	OutcomeReleased     = "released"
	OutcomeDeadLettered = "dead-lettered"
)

// Dispatch says how pending work becomes Jobs.
type Dispatch struct {
	// mode is "count" (default: Jobs are created from the triggers' backlog, as KEDA does, and fetch their work
	// themselves) or "message": the dispatcher receives each message from the single queue trigger, holds its
	// lease while the message's Job runs, deletes it when the Job completes, and retries or dead-letters it when
	// the Job fails. The worker reads the message from the file $KUBEDISPATCH_MESSAGE_PATH and never touches the
	// queue. In message mode maxReplicaCount is the number of messages held at once, and scalingStrategy and
	// minReplicaCount do not apply.
	// +optional
	// +kubebuilder:default=count
	// +kubebuilder:validation:Enum=count;message
	Mode string `json:"mode,omitempty"`

	// maxDeliveries is how many Jobs a message gets (message mode): after that many failed Jobs it is
	// dead-lettered with the last Job's failure reason. Defaults to 3.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxDeliveries *int32 `json:"maxDeliveries,omitempty"`

	// deadLetter is where messages that cannot be processed go (message mode). Without it, a message whose Jobs
	// all failed is left to the queue's own redrive policy (SQS) once it is released for the last time.
	// +optional
	DeadLetter *DeadLetter `json:"deadLetter,omitempty"`

	// payload says where the message body is mounted in the Job's containers (message mode).
	// +optional
	Payload *Payload `json:"payload,omitempty"`

	// parameters copy parts of the message into the Job (message mode): each reads one source and writes one
	// destination.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Parameters []Parameter `json:"parameters,omitempty"`
}

// DeadLetter names the dead-letter destination: queueURL for aws-sqs-queue, topic for gcp-pubsub. Service Bus
// (azure-servicebus) always uses the entity's own dead-letter sub-queue and takes neither.
type DeadLetter struct {
	// queueURL is the SQS queue that receives dead-lettered messages, with the failure in message attributes
	// (kubedispatch-reason, kubedispatch-scaledjob, kubedispatch-deliveries, kubedispatch-job).
	// +optional
	QueueURL string `json:"queueURL,omitempty"`
	// topic is the Pub/Sub topic (an ID in the subscription's project, or projects/<project>/topics/<id>) that
	// receives dead-lettered messages, with the failure in attributes as for SQS. Without it, the subscription's own
	// dead-letter policy's topic is used when it has one.
	// +optional
	Topic string `json:"topic,omitempty"`
}

// DeadLetterFor returns the dead-letter destination for the trigger type: queueURL for SQS, topic for Pub/Sub, ""
// for Service Bus (the entity's own dead-letter sub-queue).
func (d *DeadLetter) DeadLetterFor(triggerType string) string {
	if d == nil {
		return ""
	}
	switch triggerType {
	case "gcp-pubsub":
		return d.Topic
	case "aws-sqs-queue":
		return d.QueueURL
	}
	return ""
}

// Payload places the message body in the Job.
type Payload struct {
	// mountPath is the directory, in every container, holding the read-only file "body" with the message body.
	// Defaults to /var/run/kubedispatch/message; $KUBEDISPATCH_MESSAGE_PATH is <mountPath>/body.
	// +optional
	MountPath string `json:"mountPath,omitempty"`
}

// Parameter copies one value from the message into the Job.
type Parameter struct {
	// from is where the value comes from: exactly one of attribute, json or metadata.
	// +required
	From ParameterSource `json:"from"`
	// to is where the value goes: exactly one of env, podAnnotation, podLabel or arg.
	// +required
	To ParameterTarget `json:"to"`
	// default is used when the source is missing. Without it, a message that lacks the value is dead-lettered
	// with the parameter named.
	// +optional
	Default *string `json:"default,omitempty"`
}

// ParameterSource is one value of a message.
// +kubebuilder:validation:XValidation:rule="[has(self.attribute), has(self.json), has(self.metadata)].filter(x, x).size() == 1",message="exactly one of attribute, json or metadata is required"
type ParameterSource struct {
	// attribute is the name of a message attribute.
	// +optional
	Attribute string `json:"attribute,omitempty"`
	// json is a dotted path into a JSON body, such as "customer.id" or "items.0.sku" (numbers index arrays).
	// Strings are copied as they are; other values as their JSON text.
	// +optional
	JSON string `json:"json,omitempty"`
	// metadata is one of messageId, deliveryAttempt, enqueuedAt (RFC 3339) or queue.
	// +optional
	// +kubebuilder:validation:Enum=messageId;deliveryAttempt;enqueuedAt;queue
	Metadata string `json:"metadata,omitempty"`
}

// ParameterTarget is where a value goes in the Job.
// +kubebuilder:validation:XValidation:rule="[has(self.env), has(self.podAnnotation), has(self.podLabel), has(self.arg)].filter(x, x).size() == 1",message="exactly one of env, podAnnotation, podLabel or arg is required"
type ParameterTarget struct {
	// env is the name of an environment variable set in every container.
	// +optional
	Env string `json:"env,omitempty"`
	// podAnnotation is an annotation key set on the pod template.
	// +optional
	PodAnnotation string `json:"podAnnotation,omitempty"`
	// podLabel is a label key set on the pod template; the value must be a valid label value.
	// +optional
	PodLabel string `json:"podLabel,omitempty"`
	// arg appends "<prefix><value>" to a container's args.
	// +optional
	Arg *ArgTarget `json:"arg,omitempty"`
}

// ArgTarget appends a value to a container's args.
type ArgTarget struct {
	// container is the container's name; defaults to the first container.
	// +optional
	Container string `json:"container,omitempty"`
	// prefix is written before the value in the same argument, such as "--customer=".
	// +optional
	Prefix string `json:"prefix,omitempty"`
}

// MessageStatus reports message mode.
type MessageStatus struct {
	// held is the number of messages whose lease the dispatcher holds now (each has, or is about to get, a Job).
	// +optional
	Held int32 `json:"held"`
	// acked counts messages deleted from the queue after their Job completed.
	// +optional
	Acked int64 `json:"acked"`
	// released counts messages handed back to the queue for another attempt after their Job failed.
	// +optional
	Released int64 `json:"released"`
	// deadLettered counts messages dead-lettered (all attempts failed, or the message could not become a Job).
	// +optional
	DeadLettered int64 `json:"deadLettered"`
	// oldestHeldTime is when the oldest message held now was enqueued.
	// +optional
	OldestHeldTime *metav1.Time `json:"oldestHeldTime,omitempty"`
	// leaseErrors counts failed lease renewals since the dispatcher started.
	// +optional
	LeaseErrors int64 `json:"leaseErrors,omitempty"`
	// lastDeadLetter says why the last message was dead-lettered.
	// +optional
	LastDeadLetter string `json:"lastDeadLetter,omitempty"`
}

// DispatchMode returns the dispatch mode, "count" when unset.
func (s *ScaledJobSpec) DispatchMode() string {
	if s.Dispatch == nil || s.Dispatch.Mode == "" {
		return ModeCount
	}
	return s.Dispatch.Mode
}

// IsMessageMode reports whether the ScaledJob runs in message mode.
func (s *ScaledJobSpec) IsMessageMode() bool { return s.DispatchMode() == ModeMessage }

// MaxDeliveries returns spec.dispatch.maxDeliveries, or its default.
func (s *ScaledJobSpec) MaxDeliveries() int32 {
	if s.Dispatch == nil {
		return DefaultMaxDeliveries
	}
	return int32OrDefault(s.Dispatch.MaxDeliveries, DefaultMaxDeliveries)
}

// PayloadMountPath returns spec.dispatch.payload.mountPath, or its default.
func (s *ScaledJobSpec) PayloadMountPath() string {
	if s.Dispatch == nil || s.Dispatch.Payload == nil || s.Dispatch.Payload.MountPath == "" {
		return DefaultPayloadMountPath
	}
	return s.Dispatch.Payload.MountPath
}
