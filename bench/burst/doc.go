// Command burst is the burst benchmark (`make bench`): on a fresh local stack it measures how fast a bare client-go
// loop creates Jobs at a given QPS and burst, then how fast the real dispatcher turns a burst of SQS messages into
// the same number of Jobs at the same QPS and burst, and writes the results under bench/results/.
package main
