package cluster

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/kubedispatch/kubedispatch/internal/sbfake"
)

// The Service Bus fake as the stack runs it: launched and tracked like the other emulators, its ports read from its
// log, its endpoints in the environment and in state.json, and stopped with the stack.
func TestServiceBusFakeInStack(t *testing.T) {
	if _, err := sbfake.NodePath(); err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Dir: t.TempDir()}
	t.Cleanup(func() { _ = c.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wait, err := c.startServiceBus(io.Discard, c.Dir+"/servicebus-fake.log")
	if err != nil {
		t.Fatalf("starting: %v", err)
	}
	if err := wait(ctx); err != nil {
		t.Fatalf("waiting: %v", err)
	}
	env := c.Env()
	if env["KUBEDISPATCH_SERVICEBUS_AMQP"] != c.ServiceBusAddr || env["KUBEDISPATCH_SERVICEBUS_CONTROL"] != c.ServiceBus.URL || c.ServiceBusAddr == "" {
		t.Errorf("env %v, want the fake's endpoints %s and %s", env, c.ServiceBusAddr, c.ServiceBus.URL)
	}

	if err := c.ServiceBus.CreateQueue("jobs", 0, 0); err != nil {
		t.Fatal(err)
	}
	client, err := azservicebus.NewClientFromConnectionString(env["KUBEDISPATCH_SERVICEBUS_CONNECTION_STRING"], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	sender, err := client.NewSender("jobs", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sender.SendMessage(ctx, &azservicebus.Message{Body: []byte("hello")}, nil); err != nil {
		t.Fatalf("sending: %v", err)
	}
	if s, err := c.ServiceBus.Stats("jobs"); err != nil || s.Active != 1 {
		t.Fatalf("stats %+v, %v: want 1 active", s, err)
	}

	if err := c.writeState(); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.ServiceBusAddr != c.ServiceBusAddr || loaded.ServiceBus == nil || loaded.ServiceBus.URL != c.ServiceBus.URL {
		t.Errorf("state.json gives %q and %+v, want %q and %s", loaded.ServiceBusAddr, loaded.ServiceBus, c.ServiceBusAddr, c.ServiceBus.URL)
	}
	if _, err := loaded.ServiceBus.Stats("jobs"); err != nil {
		t.Errorf("using the control API from the loaded state: %v", err)
	}

	if err := c.Stop(); err != nil {
		t.Fatalf("stopping: %v", err)
	}
	if left := c.Running(); len(left) > 0 {
		t.Errorf("still running after Stop: %v", left)
	}
}
