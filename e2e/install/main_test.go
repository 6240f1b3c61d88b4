package install

import (
	"fmt"
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// TestMain starts the stack with a real node and without the CRDs: each install brings them (kubectl apply -k
// applies deploy/crd, helm install the chart's crds/ when they are missing).
func TestMain(m *testing.M) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: building the scheme:", err)
			os.Exit(1)
		}
	}
	os.Exit(framework.Main(m, framework.Options{Scheme: s, RealNode: true}))
}
