package cluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/kubedispatch/kubedispatch/internal/sbfake"
)

// startServiceBus launches the Service Bus fake (internal/sbfake) and returns a function that waits until it listens
// and then fills in c.ServiceBusAddr and c.ServiceBus. The fake picks its own ports and prints them, so there is no
// port to lose to another process.
func (c *Cluster) startServiceBus(progress io.Writer, logPath string) (func(context.Context) error, error) {
	script := filepath.Join(c.Dir, "servicebus-fake.js")
	if err := os.WriteFile(script, sbfake.Script(), 0o644); err != nil {
		return nil, fmt.Errorf("writing the Service Bus fake's script: %w", err)
	}
	bin, args, env, err := sbfake.Command(script)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "starting the Service Bus fake (node, rhea %s)\n", sbfake.RheaVersion)
	p, err := c.launch("servicebus-fake", logPath, env, bin, args...)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		var ports sbfake.Ports
		if err := poll(ctx, []*process{p}, "the Service Bus fake to print its ports (see "+logPath+")", func() bool {
			f, err := os.Open(logPath)
			if err != nil {
				return false
			}
			defer f.Close()
			ports, err = sbfake.ReadPorts(f)
			return err == nil
		}); err != nil {
			return err
		}
		control := sbfake.NewControl("http://127.0.0.1:" + strconv.Itoa(ports.Control))
		if err := poll(ctx, []*process{p}, "the Service Bus fake's control API at "+control.URL, func() bool {
			return control.Ready(ctx) == nil
		}); err != nil {
			return err
		}
		c.mu.Lock()
		c.ServiceBusAddr = "127.0.0.1:" + strconv.Itoa(ports.AMQP)
		c.ServiceBus = control
		c.mu.Unlock()
		return nil
	}, nil
}

// serviceBusEnv adds the Service Bus fake's endpoints to env.
func (c *Cluster) serviceBusEnv(env map[string]string) {
	if c.ServiceBusAddr == "" || c.ServiceBus == nil {
		return
	}
	env["KUBEDISPATCH_SERVICEBUS_AMQP"] = c.ServiceBusAddr
	env["KUBEDISPATCH_SERVICEBUS_CONTROL"] = c.ServiceBus.URL
	// Any key name and key do while no key is registered with the fake.
	env["KUBEDISPATCH_SERVICEBUS_CONNECTION_STRING"] = sbfake.ConnectionString(c.ServiceBusAddr, "RootManageSharedAccessKey", "fake")
}
