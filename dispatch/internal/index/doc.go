// Package index defines the cache index the dispatcher lists a ScaledJob's Jobs and pods by: the value of their
// kubedispatch.io/scaledjob label. Without it a list by label scans every Job (or pod) of the namespace, on every
// tick of every ScaledJob there; with it a tick touches only its own objects. It holds no state and does no I/O
// beyond registering the index.
package index
