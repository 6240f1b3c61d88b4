package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// requestKey classifies an API request the way the kube-apiserver labels apiserver_request_total: verb (GET, LIST,
// WATCH, POST, PUT, PATCH, APPLY, DELETE, DELETECOLLECTION), resource and subresource.
type requestKey struct {
	Verb        string `json:"verb"`
	Resource    string `json:"resource"`
	Subresource string `json:"subresource,omitempty"`
}

func (k requestKey) String() string {
	if k.Subresource != "" {
		return k.Verb + " " + k.Resource + "/" + k.Subresource
	}
	return k.Verb + " " + k.Resource
}

// classify names the request as the kube-apiserver's metrics do. Paths outside /api and /apis (discovery, /version,
// /openapi) have an empty resource.
func classify(method, path string, query url.Values, contentType string) requestKey {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var rest []string
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		rest = parts[2:] // /api/v1/...
	case len(parts) >= 3 && parts[0] == "apis":
		rest = parts[3:] // /apis/<group>/<version>/...
	}
	if len(rest) >= 3 && rest[0] == "namespaces" && rest[2] != "status" && rest[2] != "finalize" {
		rest = rest[2:] // a namespaced resource; /namespaces/<name>[/status|/finalize] is the namespace itself
	}
	var k requestKey
	name := ""
	if len(rest) > 0 {
		k.Resource = rest[0]
	}
	if len(rest) > 1 {
		name = rest[1]
	}
	if len(rest) > 2 {
		k.Subresource = rest[2]
	}
	switch method {
	case http.MethodGet, http.MethodHead:
		switch {
		case query.Get("watch") == "true" || query.Get("watch") == "1":
			k.Verb = "WATCH"
		case name == "" && k.Resource != "":
			k.Verb = "LIST"
		default:
			k.Verb = "GET"
		}
	case http.MethodPatch:
		k.Verb = "PATCH"
		if strings.HasPrefix(contentType, "application/apply-patch") {
			k.Verb = "APPLY"
		}
	case http.MethodDelete:
		k.Verb = "DELETE"
		if name == "" {
			k.Verb = "DELETECOLLECTION"
		}
	default:
		k.Verb = method
	}
	return k
}

// apiProxy forwards a client's requests to the kube-apiserver and counts them by requestKey, so the requests of
// the dispatcher can be told from those of the control plane's own components.
type apiProxy struct {
	// Kubeconfig points at the proxy, with the stack's token.
	Kubeconfig string

	srv *http.Server

	mu     sync.Mutex
	counts map[requestKey]float64
}

// startProxy listens on a free loopback port and forwards to server, not verifying its self-signed certificate; it
// writes a kubeconfig for it to kubeconfig and its errors to errLog. It serves TLS with a certificate of its own:
// clientcmd sends no credentials to an http:// server.
func startProxy(server, token, kubeconfig string, errLog io.Writer) (*apiProxy, error) {
	target, err := url.Parse(server)
	if err != nil {
		return nil, fmt.Errorf("parsing the API server address: %w", err)
	}
	logger := log.New(errLog, "", log.LstdFlags|log.Lmicroseconds)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the local stack's self-signed certificate
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		},
		FlushInterval: -1, // watches stream
		ErrorLog:      logger,
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode >= 500 || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
				logger.Printf("%s %s: %s", resp.Request.Method, resp.Request.URL.Path, resp.Status)
			}
			return nil
		},
	}
	cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting the API proxy: %w", err)
	}
	p := &apiProxy{Kubeconfig: kubeconfig, counts: map[requestKey]float64{}}
	p.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			k := classify(r.Method, r.URL.Path, r.URL.Query(), r.Header.Get("Content-Type"))
			p.mu.Lock()
			p.counts[k]++
			p.mu.Unlock()
			rp.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 30 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ErrorLog:          logger,
	}
	go func() { _ = p.srv.ServeTLS(l, "", "") }()

	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["proxy"] = &clientcmdapi.Cluster{Server: "https://" + l.Addr().String(), InsecureSkipTLSVerify: true}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["proxy"] = &clientcmdapi.Context{Cluster: "proxy", AuthInfo: "admin"}
	cfg.CurrentContext = "proxy"
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		p.Stop()
		return nil, fmt.Errorf("writing the proxy's kubeconfig: %w", err)
	}
	return p, nil
}

// snapshot copies the counts so far.
func (p *apiProxy) snapshot() map[requestKey]float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[requestKey]float64, len(p.counts))
	for k, v := range p.counts {
		out[k] = v
	}
	return out
}

// Stop closes the listener and every connection, watches included.
func (p *apiProxy) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil {
		_ = p.srv.Close()
	}
}

// selfSigned makes a certificate for 127.0.0.1, valid for a day.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating the API proxy's key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "bench-scale-proxy"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("making the API proxy's certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
