package pubsub

import (
	"net"
	"os"
	"strings"

	"github.com/kubedispatch/kubedispatch/sources"
)

// defaultMonitoringHost is Cloud Monitoring's endpoint (port 443), the one the client uses without
// monitoringEndpoint.
const defaultMonitoringHost = "monitoring.googleapis.com"

// Endpoints is the gcp-pubsub sources.EndpointsFunc: monitoringEndpoint, unless it is Cloud Monitoring's own
// endpoint, with the credentials the source would send there (none with monitoringInsecure).
//
// The trigger has no other endpoint key. In message mode the Pub/Sub endpoint is Google's, or the emulator that the
// operator names in the dispatcher's PUBSUB_EMULATOR_HOST (the operator's choice, not the tenant's). The token_uri
// and universe_domain of a service account key decide where that key itself is used: they come with the key and
// send only that key, so they are no way to reach another namespace's or the dispatcher's credentials.
func Endpoints(cfg sources.Config) ([]sources.EndpointUse, error) {
	m, _, keyField, err := parseWithKeyField(cfg, os.Getenv(envGoogleCloudProject))
	if err != nil || m.MonitoringEndpoint == "" {
		return nil, err
	}
	host, port, err := net.SplitHostPort(m.MonitoringEndpoint)
	if err != nil {
		return nil, err // parse checked it
	}
	host = strings.ToLower(host)
	if port == "443" {
		port = ""
	}
	if host == defaultMonitoringHost && port == "" && !m.MonitoringInsecure {
		return nil, nil
	}
	_, field, _, _ := cfg.Params().Lookup(keyMonitoringEndpoint)
	var credentials sources.Origin
	switch {
	case m.Auth == AuthNone:
		credentials = sources.OriginNone
	case m.Auth == AuthPodIdentity:
		credentials = sources.OriginAmbient
	case keyField == sources.AuthField:
		credentials = cfg.AuthCredentialsOrigin()
	default: // credentialsFromEnv, credentialsFromEnvFile: the workload's own env and Secrets
		credentials = sources.OriginNamespace
	}
	return []sources.EndpointUse{{
		Key: keyMonitoringEndpoint, Field: field, Host: host, Port: port,
		Literal: field == sources.MetadataField(keyMonitoringEndpoint), SetBy: cfg.FieldOrigin(field), Credentials: credentials,
	}}, nil
}
