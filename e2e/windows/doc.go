// Package windows holds the end-to-end tests of capacity windows and once-per-window cron batches on the local
// control plane with moto, with windows a minute or two ahead on the real clock (the unit tests of
// dispatch/capacity cover the schedule rules with an injected clock).
package windows
