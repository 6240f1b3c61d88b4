package cluster

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// FreePorts returns n distinct loopback ports that were free when checked. They are drawn at random from below the
// kernel's ephemeral range: a port that net.Listen(":0") hands out comes from the same range as the source ports of
// outgoing connections, so any connection made between the check and the component's bind (a JVM emulator starting,
// a module download) could take it. Below the range only another listener can, which Start survives by retrying.
func FreePorts(n int) ([]int, error) {
	lo, hi := portRange()
	seen := make(map[int]bool, n)
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries > 200*n {
			return nil, fmt.Errorf("finding %d free ports in %d-%d: only %d found", n, lo, hi, len(ports))
		}
		p := lo + rand.IntN(hi-lo)
		if seen[p] {
			continue
		}
		seen[p] = true
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		ports = append(ports, p)
	}
	return ports, nil
}

// FreeAddr is FreePorts(1) as a host:port.
func FreeAddr() (string, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(ports[0]), nil
}

// portRange is [10000, start of the ephemeral range), or 10000-32767 when the range cannot be read.
func portRange() (lo, hi int) {
	lo, hi = 10000, 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return lo, hi
	}
	if start, err := strconv.Atoi(f[0]); err == nil && start > lo+1000 {
		hi = start
	}
	return lo, hi
}

// bindConflict reports whether a start-up error was a component losing its port to another process.
func bindConflict(err error) bool {
	return err != nil && strings.Contains(err.Error(), "address already in use")
}
