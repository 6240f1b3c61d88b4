package framework

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"
)

// SQSRecorder is a reverse proxy in front of moto that records what the dispatcher does to messages: which
// message ids it received (and how often) and when it deleted each. A ScaledJob's awsEndpoint points at URL.
// BeforeDelete, when set, runs before a DeleteMessage is forwarded, with the message's id; the test checks there
// that the message's Job has completed (a delete that comes too early is then caught as it happens).
type SQSRecorder struct {
	URL string
	// BeforeDelete checks a delete before it reaches moto; a returned error is recorded in Violations.
	BeforeDelete func(messageID string) error

	mu         sync.Mutex
	handles    map[string]string // receipt handle -> message id
	received   map[string]int    // message id -> deliveries
	deleted    map[string]time.Time
	violations []string
}

// RecordSQS starts an SQSRecorder in front of the stack's moto; it stops when the test ends.
func (f *F) RecordSQS() *SQSRecorder {
	f.T.Helper()
	target, err := url.Parse(stack.SQSEndpoint)
	if err != nil {
		f.T.Fatal(err)
	}
	r := &SQSRecorder{handles: map[string]string{}, received: map[string]int{}, deleted: map[string]time.Time{}}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Header.Get("X-Amz-Target") != "AmazonSQS.ReceiveMessage" || resp.StatusCode != http.StatusOK {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		var out struct {
			Messages []struct{ MessageId, ReceiptHandle string }
		}
		if json.Unmarshal(body, &out) == nil {
			r.mu.Lock()
			for _, m := range out.Messages {
				r.handles[m.ReceiptHandle] = m.MessageId
				r.received[m.MessageId]++
			}
			r.mu.Unlock()
		}
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("X-Amz-Target") == "AmazonSQS.DeleteMessage" {
			body, err := io.ReadAll(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
			var in struct{ ReceiptHandle string }
			_ = json.Unmarshal(body, &in)
			r.mu.Lock()
			id := r.handles[in.ReceiptHandle]
			check := r.BeforeDelete
			r.mu.Unlock()
			if id == "" {
				r.violate("DeleteMessage with a receipt handle never received through the recorder")
			} else if check != nil {
				if err := check(id); err != nil {
					r.violate("message " + id + " deleted too early: " + err.Error())
				}
			}
			r.mu.Lock()
			if _, dup := r.deleted[id]; !dup && id != "" {
				r.deleted[id] = time.Now()
			}
			r.mu.Unlock()
		}
		proxy.ServeHTTP(w, req)
	}))
	f.T.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

func (r *SQSRecorder) violate(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.violations = append(r.violations, s)
}

// Violations returns what BeforeDelete refused, and deletes of unknown handles.
func (r *SQSRecorder) Violations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.violations...)
}

// Received returns how often each message id was delivered to the dispatcher.
func (r *SQSRecorder) Received() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.received))
	for k, v := range r.received {
		out[k] = v
	}
	return out
}

// Deleted returns when each deleted message id was first deleted.
func (r *SQSRecorder) Deleted() map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]time.Time, len(r.deleted))
	for k, v := range r.deleted {
		out[k] = v
	}
	return out
}
