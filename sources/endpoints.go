package sources

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// The dispatcher flags that the endpoint policy's refusals name.
const (
	// FlagAllowedEndpoints lists the host patterns a trigger may point a non-default endpoint at.
	FlagAllowedEndpoints = "allowed-endpoints"
	// FlagAllowAmbientCredentials lets the dispatcher's own identity and ClusterTriggerAuthentication credentials go
	// to an allowed non-default endpoint.
	FlagAllowAmbientCredentials = "allow-ambient-credentials-on-custom-endpoints"
)

// Origin says whose a credential, or an endpoint setting, is.
type Origin string

// Origins.
const (
	// OriginNone means no credentials are sent.
	OriginNone Origin = "none"
	// OriginNamespace is the ScaledJob's own namespace: its trigger metadata, its workload's env and the Secrets
	// that env or a mounted Secret volume names, or a TriggerAuthentication there.
	OriginNamespace Origin = "namespace"
	// OriginCluster is a ClusterTriggerAuthentication, the platform team's (its Secrets are in the dispatcher's
	// namespace).
	OriginCluster Origin = "cluster"
	// OriginAmbient is the dispatcher's own identity: pod identity (aws, gcp, azure-workload, and a role assumed
	// with it) or the default credentials of its environment.
	OriginAmbient Origin = "ambient"
)

// EndpointUse is one endpoint that a trigger would talk to instead of its source's default, and the credentials the
// source would send there. Sources describe them (see Registry.RegisterEndpoints); CheckEndpoint decides.
type EndpointUse struct {
	// Key is the trigger parameter that sets the endpoint, e.g. "awsEndpoint" or "endpointSuffix".
	Key string
	// Field is where Key's value came from, as Params.Lookup reports it, e.g. "metadata.awsEndpoint",
	// "metadata.awsEndpointFromEnv" or AuthField. Refusals name it.
	Field string
	// Host is the host the source would connect to (an IPv6 address without brackets).
	Host string
	// Port is the port, or "" for the protocol's default port.
	Port string
	// Literal says the endpoint was written literally in the trigger metadata, so a refusal may show it; otherwise
	// (an env variable, a Secret, a TriggerAuthentication parameter) it is not shown.
	Literal bool
	// SetBy is who chose the endpoint: OriginNamespace, or OriginCluster when it is a parameter of a
	// ClusterTriggerAuthentication (then it is the platform team's choice, like the dispatcher's own environment).
	SetBy Origin
	// Credentials is whose credentials the source would send to the endpoint.
	Credentials Origin
}

// EndpointPolicy is the operator's rule for non-default endpoints chosen in a ScaledJob's namespace. The zero value
// allows none.
type EndpointPolicy struct {
	// Allowed are the host patterns (--allowed-endpoints) a non-default endpoint must match.
	Allowed []HostPattern
	// AllowAmbientCredentials (--allow-ambient-credentials-on-custom-endpoints) lets an allowed non-default endpoint
	// receive the dispatcher's own identity or a ClusterTriggerAuthentication's credentials.
	AllowAmbientCredentials bool
}

// CheckEndpoint applies policy to one non-default endpoint. It allows the endpoint when the platform team chose it
// (a ClusterTriggerAuthentication parameter); otherwise only when its host matches an allowed pattern and the
// credentials it would receive belong to the ScaledJob's namespace (or none are sent), or the policy allows ambient
// credentials too. A refusal is a *ConfigError on use.Field that names the flag that would allow the endpoint.
func CheckEndpoint(use EndpointUse, policy EndpointPolicy) error {
	if use.SetBy == OriginCluster {
		return nil
	}
	allowed := policy.allows(use.Host, use.Port)
	ambient := (use.Credentials == OriginAmbient || use.Credentials == OriginCluster) && !policy.AllowAmbientCredentials
	if allowed && !ambient {
		return nil
	}
	what := "endpoint " + use.display()
	if use.Field != MetadataField(use.Key) {
		what = "parameter " + use.Key + ": endpoint " + use.display()
	}
	var reasons []string
	if !allowed {
		list := "matches none of the host patterns in the dispatcher's --" + FlagAllowedEndpoints
		if len(policy.Allowed) == 0 {
			list = "is not allowed: the dispatcher allows no custom endpoints (--" + FlagAllowedEndpoints + " is empty)"
		}
		reasons = append(reasons, fmt.Sprintf("%s is not the default endpoint and %s; remove %s to use the default "+
			"endpoint, or ask the platform team to add a matching pattern to --%s", what, list, use.Key, FlagAllowedEndpoints))
	}
	if ambient {
		prefix := what + " is not the default endpoint, and it"
		if !allowed {
			prefix = "it also"
		}
		reasons = append(reasons, fmt.Sprintf("%s would receive %s, which the dispatcher never sends to a custom endpoint "+
			"unless it runs with --%s: use credentials from this namespace instead (a TriggerAuthentication with "+
			"secretTargetRef, or <key>FromEnv)", prefix, use.Credentials.describe(), FlagAllowAmbientCredentials))
	}
	return &ConfigError{Field: use.Field, Detail: strings.Join(reasons, "; ")}
}

func (u EndpointUse) display() string {
	if !u.Literal {
		return "(its value is not shown: it is not literal trigger metadata)"
	}
	return strconv.Quote(JoinHostPort(u.Host, u.Port))
}

func (o Origin) describe() string {
	switch o {
	case OriginCluster:
		return "the credentials of a ClusterTriggerAuthentication"
	case OriginAmbient:
		return "the dispatcher's own identity (pod identity, or the default credentials of its environment)"
	default:
		return "credentials"
	}
}

func (p EndpointPolicy) allows(host, port string) bool {
	for _, hp := range p.Allowed {
		if hp.Matches(host, port) {
			return true
		}
	}
	return false
}

// HostPattern is one entry of --allowed-endpoints: a host ("localhost", "10.0.0.7", "[::1]"), "*.<domain>" for
// any host below that domain (not the domain itself), or "*" for any host; then optionally ":<port>" or ":*". A
// pattern without a port matches only endpoints on their protocol's default port.
type HostPattern struct {
	host string // lower case; "*" or "*.<domain>" or a host
	port string // "" default port only, "*" any port, or a port number
}

// ParseHostPatterns parses a comma-separated list of host patterns; empty entries are skipped.
func ParseHostPatterns(list string) ([]HostPattern, error) {
	var out []HostPattern
	for _, raw := range strings.Split(list, ",") {
		s := strings.TrimSpace(raw)
		if s == "" {
			continue
		}
		p, err := parseHostPattern(s)
		if err != nil {
			return nil, fmt.Errorf("parsing host pattern %q: %w", s, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func parseHostPattern(s string) (HostPattern, error) {
	if strings.Contains(s, "/") || strings.Contains(s, "@") || strings.ContainsAny(s, " \t") {
		return HostPattern{}, fmt.Errorf("want a host pattern such as *.internal.example.com or 127.0.0.1:*, not a URL")
	}
	host, port := s, ""
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.Index(s, "]")
		if end < 0 {
			return HostPattern{}, fmt.Errorf("unclosed [")
		}
		host, port = s[1:end], strings.TrimPrefix(s[end+1:], ":")
		if rest := s[end+1:]; (rest != "" && !strings.HasPrefix(rest, ":")) || rest == ":" {
			return HostPattern{}, fmt.Errorf("want [<IPv6>], [<IPv6>]:<port> or [<IPv6>]:*")
		}
		if net.ParseIP(host) == nil {
			return HostPattern{}, fmt.Errorf("%q in brackets is not an IPv6 address", host)
		}
	case strings.Count(s, ":") == 1:
		host, port, _ = strings.Cut(s, ":")
		if port == "" {
			return HostPattern{}, fmt.Errorf("the port is empty (use host:* for any port)")
		}
	case strings.Count(s, ":") > 1:
		if net.ParseIP(s) == nil {
			return HostPattern{}, fmt.Errorf("not a host, host:port or IPv6 address")
		}
	}
	if host == "" {
		return HostPattern{}, fmt.Errorf("the host is empty")
	}
	if port != "" && port != "*" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return HostPattern{}, fmt.Errorf("port %q is not * or a number from 1 to 65535", port)
		}
	}
	host = strings.ToLower(host)
	domain := strings.TrimPrefix(host, "*.")
	if host != "*" && (strings.Contains(domain, "*") || domain == "" || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".")) {
		return HostPattern{}, fmt.Errorf("* may only be the whole host or its first label (*.example.com)")
	}
	return HostPattern{host: host, port: port}, nil
}

// Matches reports whether an endpoint on host and port ("" for the default port) matches the pattern. Host names
// compare case-insensitively and without a trailing dot.
func (p HostPattern) Matches(host, port string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	switch {
	case p.port == "*":
	case p.port != port:
		return false
	}
	switch {
	case p.host == "*":
		return true
	case strings.HasPrefix(p.host, "*."):
		return strings.HasSuffix(host, p.host[1:]) && len(host) > len(p.host)-1
	default:
		return host == p.host
	}
}

// String returns the pattern as written (host lower-cased).
func (p HostPattern) String() string {
	if p.port == "" {
		if strings.Contains(p.host, ":") {
			return "[" + p.host + "]"
		}
		return p.host
	}
	return JoinHostPort(p.host, p.port)
}

// URLHostPort returns an http(s) URL's host and port, the port "" when it is absent or the scheme's default (443 for
// https, 80 for http).
func URLHostPort(u *url.URL) (host, port string) {
	host, port = u.Hostname(), u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	return strings.ToLower(host), port
}

// JoinHostPort is net.JoinHostPort, or just host (bracketed if IPv6) when port is "".
func JoinHostPort(host, port string) string {
	if port == "" {
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, port)
}

// FieldOrigin is who set a value that Params.Lookup found in field: OriginCluster for a parameter of a
// ClusterTriggerAuthentication, else OriginNamespace (trigger metadata, the workload's env, a TriggerAuthentication).
func (c Config) FieldOrigin(field string) Origin {
	if field == AuthField && c.AuthOrigin == OriginCluster {
		return OriginCluster
	}
	return OriginNamespace
}

// AuthCredentialsOrigin is whose AuthParams are: OriginNamespace for a TriggerAuthentication in the ScaledJob's
// namespace, else OriginCluster (also when AuthOrigin is not set: unknown parameters are not trusted).
func (c Config) AuthCredentialsOrigin() Origin {
	if c.AuthOrigin == OriginNamespace {
		return OriginNamespace
	}
	return OriginCluster
}
