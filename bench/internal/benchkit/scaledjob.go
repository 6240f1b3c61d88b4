package benchkit

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
)

// unpausePatch removes the pause annotation.
const unpausePatch = `{"metadata":{"annotations":{"` + v1alpha1.AnnotationPaused + `":null}}}`

// Unpause removes the pause annotation of the ScaledJob at key.
func Unpause(ctx context.Context, cl client.Client, key client.ObjectKey) error {
	sj := &v1alpha1.ScaledJob{}
	sj.Namespace, sj.Name = key.Namespace, key.Name
	if err := cl.Patch(ctx, sj, client.RawPatch(types.MergePatchType, []byte(unpausePatch))); err != nil {
		return fmt.Errorf("unpausing ScaledJob %s: %w", key, err)
	}
	return nil
}
