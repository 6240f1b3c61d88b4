package sourcetest

import (
	"net"
	"testing"

	"cloud.google.com/go/monitoring/apiv3/v2/monitoringpb"
	"google.golang.org/grpc"
)

// ServeMetricService serves a (fake) Cloud Monitoring MetricService on a loopback port until the test ends and
// returns its address, for a client built with the `monitoringEndpoint` and `monitoringInsecure` trigger keys.
func ServeMetricService(t testing.TB, svc monitoringpb.MetricServiceServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening for the fake MetricService: %v", err)
	}
	srv := grpc.NewServer()
	monitoringpb.RegisterMetricServiceServer(srv, svc)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	return lis.Addr().String()
}
