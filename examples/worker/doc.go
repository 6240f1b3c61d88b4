// Command worker is the example worker image of kubedispatch's message mode (ghcr.io/kubedispatch/worker): it
// reads the message body from the file named by $KUBEDISPATCH_MESSAGE_PATH, prints its SHA-256 and size and the
// body itself (cut at 1 KiB), writes a one-line result and exits 0. A body that is a JSON object with "fail": true,
// or WORKER_FAIL=1, makes it say why and exit 1, so that tests and demos can watch a message being redelivered.
//
// It must stay a plain example: no queue client, no Kubernetes client, no network. The dispatcher acknowledges the
// message when the Job completes; the worker only has to do its work and exit with the right code.
package main
