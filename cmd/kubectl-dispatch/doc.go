// Command kubectl-dispatch is the kubectl plugin of kubedispatch (`kubectl dispatch ...`): explain why a
// ScaledJob creates the Jobs it does, watch it, import KEDA manifests, and pause or resume it.
//
// It is thin: the decision, pending rule and validation come from the project's own packages (dispatch,
// api/v1alpha1), the conversion from internal/importer and the explanation from internal/explain. It must never
// create or delete Jobs, and never read Secrets; its only write is the pause annotation on a ScaledJob.
package main
