// Command drain is the drain-at-the-cap benchmark: on a fresh local stack the real dispatcher drains 100 SQS messages
// through a ScaledJob capped at 10 Jobs whose kwok pods run 10 s, served by the worker simulator, once per polling
// interval, and the results are written under bench/results/.
package main
