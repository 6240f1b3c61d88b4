package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// realPKI is the certificate authority of a stack with a real node and the certificates it signs. Without a real
// node the stack needs none: clients skip verification of the apiserver's self-signed certificate. With one, pods
// verify the apiserver with the CA in the kube-root-ca.crt ConfigMap, the apiserver verifies the kubelet's serving
// certificate (kubectl logs) and the kubelet authenticates the apiserver by its client certificate.
type realPKI struct {
	dir string
	// CA is the CA certificate file: the controller-manager's --root-ca-file, so every namespace's kube-root-ca.crt.
	CA string
	// APIServerCert/Key serve the apiserver, valid for 127.0.0.1 and the in-cluster names of the kubernetes Service.
	APIServerCert, APIServerKey string
	// KubeletClientCert/Key are the apiserver's client certificate towards the kubelet (group system:masters).
	KubeletClientCert, KubeletClientKey string
	// KubeletCert/Key serve the kubelet, valid for the node's IP and name.
	KubeletCert, KubeletKey string
}

// writeRealPKI creates the CA and the three certificates in dir. nodeIP is the real node's address.
func writeRealPKI(dir string, nodeIP net.IP) (*realPKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating real-node PKI dir: %w", err)
	}
	p := &realPKI{
		dir:               dir,
		CA:                filepath.Join(dir, "ca.crt"),
		APIServerCert:     filepath.Join(dir, "apiserver.crt"),
		APIServerKey:      filepath.Join(dir, "apiserver.key"),
		KubeletClientCert: filepath.Join(dir, "apiserver-kubelet-client.crt"),
		KubeletClientKey:  filepath.Join(dir, "apiserver-kubelet-client.key"),
		KubeletCert:       filepath.Join(dir, "kubelet.crt"),
		KubeletKey:        filepath.Join(dir, "kubelet.key"),
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kubedispatch-local-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("signing CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parsing CA certificate: %w", err)
	}
	if err := writePEM(p.CA, "CERTIFICATE", caDER, 0o644); err != nil {
		return nil, err
	}
	leaves := []struct {
		cert, key string
		tmpl      x509.Certificate
	}{
		{p.APIServerCert, p.APIServerKey, x509.Certificate{
			Subject:     pkix.Name{CommonName: "kube-apiserver"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(10, 96, 0, 1)},
			DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
				"kubernetes.default.svc.cluster.local"},
		}},
		{p.KubeletClientCert, p.KubeletClientKey, x509.Certificate{
			Subject:     pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}},
		{p.KubeletCert, p.KubeletKey, x509.Certificate{
			Subject:     pkix.Name{CommonName: "system:node:" + RealNodeName, Organization: []string{"system:nodes"}},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			IPAddresses: []net.IP{nodeIP, net.IPv4(127, 0, 0, 1)},
			DNSNames:    []string{RealNodeName, "localhost"},
		}},
	}
	for i, l := range leaves {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generating key for %s: %w", l.tmpl.Subject.CommonName, err)
		}
		tmpl := l.tmpl
		tmpl.SerialNumber = big.NewInt(int64(i + 2))
		tmpl.NotBefore = now.Add(-time.Hour)
		tmpl.NotAfter = now.Add(365 * 24 * time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, fmt.Errorf("signing certificate for %s: %w", tmpl.Subject.CommonName, err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("encoding key for %s: %w", tmpl.Subject.CommonName, err)
		}
		if err := writePEM(l.cert, "CERTIFICATE", der, 0o644); err != nil {
			return nil, err
		}
		if err := writePEM(l.key, "EC PRIVATE KEY", keyDER, 0o600); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Base(path), err)
	}
	return nil
}
