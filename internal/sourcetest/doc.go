// Package sourcetest holds the fixture builders, assertions and process helpers shared by the tests of the trigger
// sources; only tests import it.
package sourcetest
