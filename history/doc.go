// Package history selects the finished Jobs of a ScaledJob that exceed its history limits and deletes them.
package history
