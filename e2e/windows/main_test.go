package windows

import (
	"flag"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// The tests wait on the real clock for windows to open and close and use little CPU: run them all at once
	// rather than GOMAXPROCS (2 here) at a time, unless -parallel was given.
	if f := flag.Lookup("test.parallel"); f != nil && f.Value.String() == strconv.Itoa(runtime.GOMAXPROCS(0)) {
		_ = flag.Set("test.parallel", "8")
	}
	os.Exit(framework.MainWithAPI(m))
}
