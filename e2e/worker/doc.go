// Package worker simulates the queue workers that real Job images run in count mode: each Job's pod takes one
// message when it starts running and deletes it when it succeeds (releases it when it fails).
package worker
