// Package dispatcher holds the end-to-end tests of the dispatcher binary on the local control plane with moto.
package dispatcher
