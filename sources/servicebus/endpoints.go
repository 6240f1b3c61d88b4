package servicebus

import (
	"strings"

	"github.com/kubedispatch/kubedispatch/sources"
)

// Endpoints is the azure-servicebus sources.EndpointsFunc: with workload identity and cloud Private, the namespace
// host under endpointSuffix (unless the suffix is a known cloud's), which would receive the dispatcher's own Azure AD
// token (a token for Service Bus, valid for every namespace the identity may read).
//
// A connection string's Endpoint is not described: the connection string is the credential and the endpoint at once
// (its SAS tokens are signed for that host), so it sends nothing but itself to the host it names, and a
// ClusterTriggerAuthentication's connection string names the platform team's host.
func Endpoints(cfg sources.Config) ([]sources.EndpointUse, error) {
	m, _, err := parse(cfg)
	if err != nil || m.Auth != AuthWorkloadIdentity || m.Cloud != CloudPrivate {
		return nil, err
	}
	p := cfg.Params()
	suffix, field, _, _ := p.Lookup(keyEndpointSuffix)
	for _, known := range cloudSuffixes {
		if strings.EqualFold(suffix, known) {
			return nil, nil
		}
	}
	_, nsField, _, _ := p.Lookup(keyNamespace)
	return []sources.EndpointUse{{
		Key: keyEndpointSuffix, Field: field, Host: strings.ToLower(m.Namespace),
		Literal: field == sources.MetadataField(keyEndpointSuffix) && nsField == sources.MetadataField(keyNamespace),
		SetBy:   cfg.FieldOrigin(field), Credentials: sources.OriginAmbient,
	}}, nil
}
