package sources

import (
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustPatterns(t *testing.T, list string) []HostPattern {
	t.Helper()
	p, err := ParseHostPatterns(list)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckEndpoint(t *testing.T) {
	local := "127.0.0.1:*,localhost:*,*.internal.example.com"
	use := func(mod func(*EndpointUse)) EndpointUse {
		u := EndpointUse{Key: "awsEndpoint", Field: "metadata.awsEndpoint", Host: "127.0.0.1", Port: "4566",
			Literal: true, SetBy: OriginNamespace, Credentials: OriginNamespace}
		if mod != nil {
			mod(&u)
		}
		return u
	}
	const (
		notListed  = `endpoint "127.0.0.1:4566" is not the default endpoint and matches none of the host patterns in the dispatcher's --allowed-endpoints; remove awsEndpoint to use the default endpoint, or ask the platform team to add a matching pattern to --allowed-endpoints`
		noneListed = `endpoint "127.0.0.1:4566" is not the default endpoint and is not allowed: the dispatcher allows no custom endpoints (--allowed-endpoints is empty); remove awsEndpoint to use the default endpoint, or ask the platform team to add a matching pattern to --allowed-endpoints`
		ambientTpl = `endpoint "127.0.0.1:4566" is not the default endpoint, and it would receive %s, which the dispatcher never sends to a custom endpoint unless it runs with --allow-ambient-credentials-on-custom-endpoints: use credentials from this namespace instead (a TriggerAuthentication with secretTargetRef, or <key>FromEnv)`
		identity   = "the dispatcher's own identity (pod identity, or the default credentials of its environment)"
		clusterCA  = "the credentials of a ClusterTriggerAuthentication"
	)
	cases := map[string]struct {
		use     EndpointUse
		policy  EndpointPolicy
		wantErr *ConfigError
	}{
		"allowed host, namespace credentials": {
			use:    use(nil),
			policy: EndpointPolicy{Allowed: mustPatterns(t, local)},
		},
		"allowed host, no credentials": {
			use:    use(func(u *EndpointUse) { u.Credentials = OriginNone }),
			policy: EndpointPolicy{Allowed: mustPatterns(t, local)},
		},
		"empty allow-list refuses even namespace credentials": {
			use:     use(nil),
			wantErr: &ConfigError{Field: "metadata.awsEndpoint", Detail: noneListed},
		},
		"host not listed": {
			use:     use(nil),
			policy:  EndpointPolicy{Allowed: mustPatterns(t, "localhost:*")},
			wantErr: &ConfigError{Field: "metadata.awsEndpoint", Detail: notListed},
		},
		"allowed host, pod identity refused": {
			use:     use(func(u *EndpointUse) { u.Credentials = OriginAmbient }),
			policy:  EndpointPolicy{Allowed: mustPatterns(t, local)},
			wantErr: &ConfigError{Field: "metadata.awsEndpoint", Detail: strings.Replace(ambientTpl, "%s", identity, 1)},
		},
		"allowed host, ClusterTriggerAuthentication credentials refused": {
			use:     use(func(u *EndpointUse) { u.Credentials = OriginCluster }),
			policy:  EndpointPolicy{Allowed: mustPatterns(t, local)},
			wantErr: &ConfigError{Field: "metadata.awsEndpoint", Detail: strings.Replace(ambientTpl, "%s", clusterCA, 1)},
		},
		"allowed host, pod identity with the ambient flag": {
			use:    use(func(u *EndpointUse) { u.Credentials = OriginAmbient }),
			policy: EndpointPolicy{Allowed: mustPatterns(t, local), AllowAmbientCredentials: true},
		},
		"the ambient flag alone does not allow a host": {
			use:     use(func(u *EndpointUse) { u.Credentials = OriginAmbient }),
			policy:  EndpointPolicy{Allowed: mustPatterns(t, "localhost:*"), AllowAmbientCredentials: true},
			wantErr: &ConfigError{Field: "metadata.awsEndpoint", Detail: notListed},
		},
		"host not listed and pod identity: both flags named": {
			use:    use(func(u *EndpointUse) { u.Credentials = OriginAmbient }),
			policy: EndpointPolicy{Allowed: mustPatterns(t, "localhost:*")},
			wantErr: &ConfigError{Field: "metadata.awsEndpoint", Detail: notListed + "; it also would receive " + identity +
				", which the dispatcher never sends to a custom endpoint unless it runs with --allow-ambient-credentials-on-custom-endpoints: use credentials from this namespace instead (a TriggerAuthentication with secretTargetRef, or <key>FromEnv)"},
		},
		"endpoint set by a ClusterTriggerAuthentication is the platform's choice": {
			use: use(func(u *EndpointUse) {
				u.Field, u.Literal, u.SetBy, u.Credentials = AuthField, false, OriginCluster, OriginAmbient
			}),
		},
		"endpoint from env is not shown and the parameter is named": {
			use: use(func(u *EndpointUse) { u.Field, u.Literal = "metadata.awsEndpointFromEnv", false }),
			wantErr: &ConfigError{Field: "metadata.awsEndpointFromEnv",
				Detail: "parameter awsEndpoint: endpoint (its value is not shown: it is not literal trigger metadata) is not the default endpoint and is not allowed: the dispatcher allows no custom endpoints (--allowed-endpoints is empty); remove awsEndpoint to use the default endpoint, or ask the platform team to add a matching pattern to --allowed-endpoints"},
		},
		"wildcard subdomain": {
			use: use(func(u *EndpointUse) {
				u.Key, u.Field, u.Host, u.Port, u.Credentials = "endpointSuffix", "metadata.endpointSuffix", "jobs.sb.internal.example.com", "", OriginNamespace
			}),
			policy: EndpointPolicy{Allowed: mustPatterns(t, local)},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := CheckEndpoint(tc.use, tc.policy)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("CheckEndpoint() = %v, want nil", err)
				}
				return
			}
			ce, ok := err.(*ConfigError)
			if !ok {
				t.Fatalf("CheckEndpoint() = %v (%T), want *ConfigError", err, err)
			}
			if diff := cmp.Diff(tc.wantErr, ce); diff != "" {
				t.Errorf("CheckEndpoint() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseHostPatterns(t *testing.T) {
	cases := map[string]struct {
		list    string
		want    []string
		wantErr string
	}{
		"empty":             {list: "", want: nil},
		"blanks skipped":    {list: " , localhost ,", want: []string{"localhost"}},
		"the brief's set":   {list: "*.internal.example.com,127.0.0.1:*,localhost", want: []string{"*.internal.example.com", "127.0.0.1:*", "localhost"}},
		"case folded":       {list: "SQS.Example.COM:8443", want: []string{"sqs.example.com:8443"}},
		"ipv6":              {list: "[::1]:*,[fd00::1],fd00::2", want: []string{"[::1]:*", "[fd00::1]", "[fd00::2]"}},
		"any host":          {list: "*", want: []string{"*"}},
		"a URL":             {list: "https://sqs.example.com", wantErr: "not a URL"},
		"empty port":        {list: "localhost:", wantErr: "the port is empty"},
		"bad port":          {list: "localhost:70000", wantErr: "port \"70000\""},
		"inner wildcard":    {list: "sqs.*.example.com", wantErr: "* may only be"},
		"bare wildcard dot": {list: "*.", wantErr: "* may only be"},
		"unclosed bracket":  {list: "[::1", wantErr: "unclosed"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseHostPatterns(tc.list)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseHostPatterns(%q) error = %v, want one containing %q", tc.list, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, p := range got {
				s = append(s, p.String())
			}
			if diff := cmp.Diff(tc.want, s); diff != "" {
				t.Errorf("patterns mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHostPatternMatches(t *testing.T) {
	cases := map[string]struct {
		pattern, host, port string
		want                bool
	}{
		"exact host, default port":         {pattern: "localhost", host: "localhost", want: true},
		"exact host, other port":           {pattern: "localhost", host: "localhost", port: "8080", want: false},
		"any port":                         {pattern: "127.0.0.1:*", host: "127.0.0.1", port: "4566", want: true},
		"any port includes the default":    {pattern: "127.0.0.1:*", host: "127.0.0.1", want: true},
		"given port":                       {pattern: "sqs.example.com:8443", host: "sqs.example.com", port: "8443", want: true},
		"given port, other port":           {pattern: "sqs.example.com:8443", host: "sqs.example.com", port: "443", want: false},
		"subdomain":                        {pattern: "*.internal.example.com", host: "a.b.internal.example.com", want: true},
		"subdomain excludes the domain":    {pattern: "*.internal.example.com", host: "internal.example.com", want: false},
		"subdomain is not a suffix match":  {pattern: "*.example.com", host: "evilexample.com", want: false},
		"case and trailing dot":            {pattern: "*.example.com", host: "SQS.Example.com.", want: true},
		"other host":                       {pattern: "localhost:*", host: "localhost.attacker.example", port: "80", want: false},
		"any host":                         {pattern: "*", host: "anything.example", want: true},
		"ipv6":                             {pattern: "[::1]:*", host: "::1", port: "9", want: true},
		"attacker suffix of allowed label": {pattern: "127.0.0.1:*", host: "127.0.0.1.attacker.example", port: "80", want: false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := mustPatterns(t, tc.pattern)
			if got := p[0].Matches(tc.host, tc.port); got != tc.want {
				t.Errorf("%s.Matches(%q, %q) = %v, want %v", tc.pattern, tc.host, tc.port, got, tc.want)
			}
		})
	}
}

func TestURLHostPort(t *testing.T) {
	cases := map[string]struct {
		raw, host, port string
	}{
		"https default":   {raw: "https://SQS.eu-west-1.amazonaws.com", host: "sqs.eu-west-1.amazonaws.com"},
		"https 443":       {raw: "https://sqs.example.com:443/", host: "sqs.example.com"},
		"http 80":         {raw: "http://localhost:80", host: "localhost"},
		"http other port": {raw: "http://127.0.0.1:4566", host: "127.0.0.1", port: "4566"},
		"https port 80":   {raw: "https://example.com:80", host: "example.com", port: "80"},
		"ipv6":            {raw: "http://[::1]:9324", host: "::1", port: "9324"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			u, err := url.Parse(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			host, port := URLHostPort(u)
			if diff := cmp.Diff([2]string{tc.host, tc.port}, [2]string{host, port}); diff != "" {
				t.Errorf("URLHostPort(%s) mismatch (-want +got):\n%s", tc.raw, diff)
			}
		})
	}
}

func TestConfigOrigins(t *testing.T) {
	cases := map[string]struct {
		origin      Origin
		field       string
		wantField   Origin
		wantAuthCrd Origin
	}{
		"TriggerAuthentication":        {origin: OriginNamespace, field: AuthField, wantField: OriginNamespace, wantAuthCrd: OriginNamespace},
		"ClusterTriggerAuthentication": {origin: OriginCluster, field: AuthField, wantField: OriginCluster, wantAuthCrd: OriginCluster},
		"metadata under a ClusterTriggerAuthentication": {origin: OriginCluster, field: "metadata.awsEndpoint",
			wantField: OriginNamespace, wantAuthCrd: OriginCluster},
		"unknown auth origin is not trusted": {origin: "", field: AuthField, wantField: OriginNamespace, wantAuthCrd: OriginCluster},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := Config{AuthOrigin: tc.origin}
			if got := c.FieldOrigin(tc.field); got != tc.wantField {
				t.Errorf("FieldOrigin(%s) = %s, want %s", tc.field, got, tc.wantField)
			}
			if got := c.AuthCredentialsOrigin(); got != tc.wantAuthCrd {
				t.Errorf("AuthCredentialsOrigin() = %s, want %s", got, tc.wantAuthCrd)
			}
		})
	}
}
