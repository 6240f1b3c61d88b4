// Package dispatch decides how many Jobs a ScaledJob needs and runs the per-ScaledJob loop that creates them.
package dispatch
