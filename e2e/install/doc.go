// Package install tests kubedispatch installed as users install it, on the local stack's real node: the dispatcher
// image (built without Docker) runs in a pod that `kubectl apply -k` (deploy/overlays/local) or `helm install`
// (deploy/helm/kubedispatch) created, as its ServiceAccount with exactly the RBAC of the install, and dispatches SQS
// messages from moto to Jobs. The pod sees the API server and moto on 127.0.0.1 through hostNetwork.
package install
