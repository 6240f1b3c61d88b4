package sourcetest

import (
	"net"
	"testing"
)

// FreeAddr returns a loopback host:port that nothing listens on: its port was free a moment ago. Use it for a server
// the test starts, or as an endpoint that refuses connections.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("closing listener: %v", err)
	}
	return addr
}
