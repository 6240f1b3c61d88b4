// Command pause is the sandbox ("pause") container of the local stack's real node: it holds a pod's namespaces open
// and blocks until SIGTERM or SIGINT. e2e/cluster builds it statically, packs it with internal/ociimage as
// PauseImage and imports it into the node's containerd (no registry is reachable here). It must stay this small: no
// flags, no output, no zombie reaping (the pods of the stack do not share their PID namespace).
package main
