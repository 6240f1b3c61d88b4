package triggers

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// sbQueueEntry is the ATOM entry the administration API returns for a queue's description: %[1]s is the name,
// %[2]d the active count, %[3]d the total count. One dead-lettered and one scheduled message are always there; the
// trigger must not count them.
const sbQueueEntry = `<entry xmlns="http://www.w3.org/2005/Atom"><id>https://fake/%[1]s</id><title type="text">%[1]s</title>` +
	`<content type="application/xml"><QueueDescription xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">` +
	`<MessageCount>%[3]d</MessageCount><Status>Active</Status>` +
	`<CreatedAt>2026-01-01T00:00:00Z</CreatedAt><UpdatedAt>2026-01-01T00:00:00Z</UpdatedAt><AccessedAt>2026-01-01T00:00:00Z</AccessedAt>` +
	`<CountDetails xmlns:c="http://schemas.microsoft.com/netservices/2011/06/servicebus">` +
	`<c:ActiveMessageCount>%[2]d</c:ActiveMessageCount><c:DeadLetterMessageCount>1</c:DeadLetterMessageCount>` +
	`<c:ScheduledMessageCount>1</c:ScheduledMessageCount><c:TransferMessageCount>0</c:TransferMessageCount>` +
	`<c:TransferDeadLetterMessageCount>0</c:TransferDeadLetterMessageCount></CountDetails>` +
	`</QueueDescription></content></entry>`

// sbNoEntity is what the administration API answers, with 200, for an entity that does not exist.
const sbNoEntity = `<feed xmlns="http://www.w3.org/2005/Atom"><title type="text">Publicly Listed Services</title><id>uuid:none</id><updated>2026-01-01T00:00:00Z</updated></feed>`

// fakeServiceBus is a Service Bus namespace's administration API serving queue runtime properties. It checks every
// request's SharedAccessSignature: the key name must be one it knows and the signature must be that key's HMAC, else
// 401. Counts can change while it runs.
type fakeServiceBus struct {
	keys map[string]string // SharedAccessKeyName -> SharedAccessKey

	mu      sync.Mutex
	queues  map[string]int32 // queue -> active messages
	served  map[string]int   // key name -> answered requests
	refused map[string]int   // key name (or "" when none) -> 401 answers
}

func (s *fakeServiceBus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	keyName, why := s.authorize(r.Header.Get("Authorization"))
	s.mu.Lock()
	defer s.mu.Unlock()
	if why != "" {
		s.refused[keyName]++
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `<Error><Code>401</Code><Detail>%s. TrackingId:fake</Detail></Error>`, why)
		return
	}
	s.served[keyName]++
	name := strings.TrimPrefix(r.URL.Path, "/")
	active, ok := s.queues[name]
	if r.Method != http.MethodGet || strings.Contains(name, "/") {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if !ok {
		w.Header().Set("Content-Type", "application/atom+xml;type=feed;charset=utf-8")
		fmt.Fprint(w, sbNoEntity)
		return
	}
	w.Header().Set("Content-Type", "application/atom+xml;type=entry;charset=utf-8")
	fmt.Fprintf(w, sbQueueEntry, name, active, active+2)
}

// authorize checks "SharedAccessSignature sr=<aud>&sig=<sig>&se=<expiry>&skn=<key name>" and returns the key name
// and, when refused, why (it never quotes a key).
func (s *fakeServiceBus) authorize(header string) (keyName, why string) {
	token, ok := strings.CutPrefix(header, "SharedAccessSignature ")
	if !ok {
		return "", "InvalidSignature: no SharedAccessSignature"
	}
	parts := map[string]string{}
	for _, p := range strings.Split(token, "&") {
		k, v, _ := strings.Cut(p, "=")
		parts[k] = v
	}
	keyName = parts["skn"]
	key, known := s.keys[keyName]
	if !known {
		return keyName, fmt.Sprintf("Unauthorized: the SharedAccessKeyName %q is not a policy of this namespace", keyName)
	}
	expiry, err := strconv.ParseInt(parts["se"], 10, 64)
	if err != nil || time.Unix(expiry, 0).Before(time.Now()) {
		return keyName, "InvalidSignature: the token has expired"
	}
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(parts["sr"] + "\n" + parts["se"]))
	sig, err := url.QueryUnescape(parts["sig"])
	if err != nil || !hmac.Equal([]byte(sig), []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))) {
		return keyName, "InvalidSignature: the token's signature does not match the key"
	}
	return keyName, ""
}

// setQueue sets a queue's active message count.
func (s *fakeServiceBus) setQueue(name string, active int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queues[name] = active
}

// counts returns the requests answered and refused, per key name.
func (s *fakeServiceBus) counts() (served, refused map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	served, refused = map[string]int{}, map[string]int{}
	for k, v := range s.served {
		served[k] = v
	}
	for k, v := range s.refused {
		refused[k] = v
	}
	return served, refused
}

// serviceBusServer is a running fakeServiceBus.
type serviceBusServer struct {
	*fakeServiceBus
	// Host is the server's 127.0.0.1:<port>.
	Host string
	// CertFile is a PEM file with the server's certificate, for SSL_CERT_FILE.
	CertFile string
}

// startServiceBus serves a fakeServiceBus over TLS until the test ends.
func startServiceBus(t *testing.T, keys map[string]string, queues map[string]int32) *serviceBusServer {
	t.Helper()
	fake := &fakeServiceBus{keys: keys, queues: queues, served: map[string]int{}, refused: map[string]int{}}
	ts := httptest.NewTLSServer(fake)
	t.Cleanup(ts.Close)
	u, err := url.Parse(ts.URL)
	if err != nil {
		t.Fatalf("parsing %s: %v", ts.URL, err)
	}
	certFile := filepath.Join(t.TempDir(), "servicebus-ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	if err := os.WriteFile(certFile, pemBytes, 0o600); err != nil {
		t.Fatalf("writing the server certificate: %v", err)
	}
	return &serviceBusServer{fakeServiceBus: fake, Host: u.Host, CertFile: certFile}
}

// connection returns a connection string for the server with a key name and key.
func (s *serviceBusServer) connection(keyName, key string) string {
	return "Endpoint=sb://" + s.Host + "/;SharedAccessKeyName=" + keyName + ";SharedAccessKey=" + key
}

// env is the dispatcher environment that makes it trust the server.
func (s *serviceBusServer) env() map[string]string {
	return map[string]string{"SSL_CERT_FILE": s.CertFile}
}

// sasKey returns a distinctive base64 shared access key, different on every call.
func sasKey(label string) string {
	return base64.StdEncoding.EncodeToString([]byte("kubedispatch-e2e-" + label + "-" + randomHex(12)))
}
