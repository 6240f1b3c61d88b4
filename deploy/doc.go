// Package deploy holds the install manifests of kubedispatch: the kustomize tree (kustomization.yaml here and in
// each sub-directory, the component components/namespaced-secrets, the overlay overlays/local for the local stack)
// and the Helm chart helm/kubedispatch. Its Go code renders them the way kubectl kustomize and helm template do, for
// tests only: RenderRBAC returns the RBAC an install grants, Render and HelmTemplate the objects the two installs
// create (the tests compare them), WriteLocalOverlay writes the local stack's install. It never talks to a cluster.
package deploy
