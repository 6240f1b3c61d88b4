// Package deploy holds the kustomize manifests of kubedispatch (kustomization.yaml in this directory, and the
// component components/namespaced-secrets) and RenderRBAC, which builds a kustomization the way `kubectl kustomize`
// does and returns the RBAC it grants, so that tests check what an install allows the dispatcher to do.
package deploy
