// Command dispatcher runs the kubedispatch controller: it turns queue backlogs and cron windows into Kubernetes Jobs
// for every ScaledJob it watches.
package main
