package sqs

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/kubedispatch/kubedispatch/sources"
)

// Environment variables with which the operator points the dispatcher's own SQS client at an endpoint (the AWS
// SDK's). An awsEndpoint equal to one of them is not a custom endpoint: the credentials go there anyway.
const (
	envEndpointSQS        = "AWS_ENDPOINT_URL_SQS"
	envEndpoint           = "AWS_ENDPOINT_URL"
	envIgnoreConfiguredEP = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"
)

// awsHostPattern matches AWS's own SQS endpoints in every partition: regional, FIPS and dual-stack hosts, and VPC
// interface endpoints. Credentials sent there reach AWS, never a host a tenant runs.
var awsHostPattern = regexp.MustCompile(`^(?:sqs|sqs-fips|vpce-[a-z0-9-]+\.sqs)\.[a-z0-9-]+\.` +
	`(?:vpce\.)?(?:amazonaws\.com|amazonaws\.com\.cn|api\.aws|c2s\.ic\.gov|sc2s\.sgov\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)$`)

// operatorEndpoints returns the endpoints the dispatcher's environment configures for SQS, as the AWS SDK reads
// them (AWS_ENDPOINT_URL_SQS, else AWS_ENDPOINT_URL, unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true).
func operatorEndpoints(getenv func(string) string) []string {
	if ignore, _ := strconv.ParseBool(getenv(envIgnoreConfiguredEP)); ignore {
		return nil
	}
	var out []string
	for _, k := range []string{envEndpointSQS, envEndpoint} {
		if v := getenv(k); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// endpointsFunc returns the aws-sqs-queue sources.EndpointsFunc: awsEndpoint, unless it is one of AWS's own SQS
// endpoints (https) or one of operator (the endpoints configured in the dispatcher's environment). The queue URL is
// not an endpoint: the SDK sends every request to the resolved endpoint, whatever host the queue URL names, and
// awsRegion can only pick one of AWS's hosts (the SDK refuses a region that is not a host label).
func endpointsFunc(operator []string) sources.EndpointsFunc {
	return func(cfg sources.Config) ([]sources.EndpointUse, error) {
		m, creds, err := parse(cfg)
		if err != nil || m.Endpoint == "" {
			return nil, err
		}
		u, err := url.Parse(m.Endpoint)
		if err != nil {
			return nil, err // parse checked it
		}
		if isAWSEndpoint(u) {
			return nil, nil
		}
		for _, o := range operator {
			if sameEndpoint(u, o) {
				return nil, nil
			}
		}
		p := cfg.Params()
		_, field, _, _ := p.Lookup(keyAWSEndpoint)
		credentials := sources.OriginAmbient // the default chain, or a role assumed with it
		if creds != nil && p.Auth(authRoleArn) == "" {
			credentials = cfg.AuthCredentialsOrigin()
		}
		host, port := sources.URLHostPort(u)
		return []sources.EndpointUse{{
			Key: keyAWSEndpoint, Field: field, Host: host, Port: port,
			Literal: field == sources.MetadataField(keyAWSEndpoint), SetBy: cfg.FieldOrigin(field), Credentials: credentials,
		}}, nil
	}
}

func isAWSEndpoint(u *url.URL) bool {
	host, port := sources.URLHostPort(u)
	return u.Scheme == "https" && port == "" && awsHostPattern.MatchString(host)
}

// sameEndpoint reports whether u and raw name the same scheme, host and port (paths aside).
func sameEndpoint(u *url.URL, raw string) bool {
	o, err := url.Parse(raw)
	if err != nil || o.Host == "" {
		return false
	}
	h1, p1 := sources.URLHostPort(u)
	h2, p2 := sources.URLHostPort(o)
	return strings.EqualFold(u.Scheme, o.Scheme) && h1 == h2 && p1 == p2
}
