// Package deploy holds Loadswarm's container and Kubernetes deployment
// files, and the tests that render every kustomization under k8s/ the way
// `kubectl apply -k` does and check what the cluster would get.
//
// It is a module of its own so that the main module does not depend on
// kustomize and the Kubernetes API types. Run its tests with:
//
//	cd deploy && go test ./...
package deploy
