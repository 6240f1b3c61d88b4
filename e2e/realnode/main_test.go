package realnode

import (
	"os"
	"testing"

	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

func TestMain(m *testing.M) { os.Exit(framework.MainWithRealNode(m)) }
