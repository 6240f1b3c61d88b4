// Package pubsub implements the KEDA-compatible gcp-pubsub trigger: the backlog is a Pub/Sub subscription's (or
// topic's) metric, by default pubsub.googleapis.com/subscription/num_undelivered_messages, read from Cloud Monitoring
// with ListTimeSeries.
//
// The backlog lags: Pub/Sub writes these metrics to Cloud Monitoring about once a minute and they become readable
// one to three minutes later. Backlog reports the sample's own end time as SampledAt (not the caller's now), so the
// controller can show how old the reading is; with such a source prefer the default scaling strategy, and expect a
// few polls of over-creation right after the queue drains.
//
// Metadata keys (KEDA's unless marked): subscriptionName or topicName (exactly one; or their FromEnv variants; a
// full projects/<p>/subscriptions/<s> or projects/<p>/topics/<t> sets the project), mode (default SubscriptionSize,
// an alias of NumUndeliveredMessages; any PascalCase Pub/Sub metric name), value (default 10), activationValue
// (default 0), aggregation (mean, median, variance, stddev, sum, count, percentile99, percentile95, percentile50,
// percentile5), timeHorizon (a Go duration, default 2m, or 5m with an aggregation), valueIfNull, credentialsFromEnv,
// credentialsFromEnvFile (its content comes in Config.EnvFiles: the controller reads it from the Secret volume the
// container mounts at that path; this package reads no file), and our extensions projectID, monitoringEndpoint and
// monitoringInsecure. A monitoringEndpoint other than Cloud Monitoring's is subject to the endpoint policy (see
// Endpoints). The
// TriggerAuthentication parameter GoogleApplicationCredentials holds a service account key; podIdentity provider gcp
// uses application default credentials (GKE Workload Identity).
//
// The project is, in order: the one in a full resource name; the projectID key; the service account key's
// project_id; and, with podIdentity gcp only, the controller's own GOOGLE_CLOUD_PROJECT environment variable.
//
// In message mode, Receiver pulls the trigger's subscription with unary Pull calls, leases each message with the
// subscription's ack deadline and acknowledges, nacks or dead-letters it to a Pub/Sub topic (see Receiver); it
// honours PUBSUB_EMULATOR_HOST as Google's libraries do.
package pubsub
