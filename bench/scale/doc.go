// Command scale is the scale benchmark (`make bench-scale`): on a fresh local stack the real dispatcher (a) polls
// many ScaledJobs, most of them idle, half cron and half SQS on moto, while its tick lag, API requests, status
// writes, CPU and RSS are measured over a window; and (b) holds many finished and running Jobs and their pods in its
// caches while its memory is measured. The results are written under bench/results/.
package main
