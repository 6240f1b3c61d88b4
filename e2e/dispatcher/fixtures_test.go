package dispatcher

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/e2e/framework"
)

// clientKey names an object of the test's namespace.
func clientKey(f *framework.F, name string) client.ObjectKey {
	return client.ObjectKey{Namespace: f.Namespace, Name: name}
}
