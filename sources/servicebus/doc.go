// Package servicebus implements the KEDA-compatible azure-servicebus trigger: the backlog is the active message
// count of an Azure Service Bus queue or topic subscription (or of several, matched by a regular expression), read
// from the administration API.
//
// Metadata keys (KEDA's): queueName, or topicName with subscriptionName (each also as a FromEnv variant);
// messageCount (default 5); activationMessageCount (default 0); useRegex (default false) and operation (sum, max or
// avg, default sum); connection or connectionFromEnv (or the TriggerAuthentication parameter connection), a
// connection string whose policy has the Manage right; with podIdentity provider azure-workload, namespace (required)
// and cloud (AzurePublicCloud, AzureUSGovernmentCloud, AzureChinaCloud, or Private with endpointSuffix).
//
// The active count includes messages locked by running Jobs (peek-lock) and excludes dead-lettered, scheduled and
// transfer messages, so the default scaling strategy fits. It is read live: SampledAt is the caller's now.
package servicebus
