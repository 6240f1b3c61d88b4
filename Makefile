# kubedispatch. `make` lists the targets.
SHELL := /usr/bin/env bash
export GOTOOLCHAIN := local
export KUBEDISPATCH_CACHE ?= $(HOME)/.cache/kubedispatch
GO ?= go
UNIT_PKGS = $$($(GO) list ./... | grep -v /e2e/)
E2E_TIMEOUT ?= 75m

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: demo
demo: prereqs binaries ## Local cluster + moto, the dispatcher, SQS messages becoming Jobs in count and message mode (watch with kubectl)
	$(GO) run ./e2e/cmd/demo

.PHONY: demo-message
demo-message: prereqs binaries ## Only the message-mode part of the demo: one Job per message, acks after Complete, retries, a dead-letter queue
	DEMO_MODE=message $(GO) run ./e2e/cmd/demo

.PHONY: test
test: prereqs binaries test-unit test-e2e ## Every test: unit, controller and end-to-end (builds what it needs)

.PHONY: test-unit
test-unit: prereqs helm ## Fast tests only (pure decision code, fakes, the Service Bus fake); no cluster
	@echo "==> unit tests"
	$(GO) test -race -count=1 $(UNIT_PKGS)

.PHONY: test-e2e
test-e2e: prereqs binaries helm ## End-to-end tests on the local control plane, moto and the Pub/Sub emulator
	@echo "==> end-to-end tests (each test package starts its own local stack)"
	$(GO) test -count=1 -p 1 -timeout $(E2E_TIMEOUT) ./e2e/...

.PHONY: bench
bench: prereqs binaries ## Burst, drain-at-the-cap and message-mode latency benchmarks on the local cluster; results under bench/results/
	$(GO) run ./bench/burst
	$(GO) run ./bench/drain
	$(GO) run ./bench/message

.PHONY: bench-scale
bench-scale: prereqs binaries ## 1,000 mostly idle ScaledJobs (tick lag, API load, CPU, RSS) and memory with 12k Jobs; results under bench/results/
	$(GO) run ./bench/scale

.PHONY: prereqs
prereqs:
	@bash hack/prereqs.sh

.PHONY: binaries
binaries: ## Build and cache etcd, the control plane, the kubelet, kubectl, kwok and promtool (about 19 min cold, instant warm)
	@echo "==> control-plane binaries (cached under $(KUBEDISPATCH_CACHE)/bin; the first build takes about 19 minutes on 2 cores)"
	@bash hack/build-binaries.sh >/dev/null

.PHONY: helm
helm: ## Build and cache helm (hack/build-helm.sh; about 5 minutes cold, instant warm), for the chart's tests
	@bash hack/build-helm.sh >/dev/null

.PHONY: cluster-up
cluster-up: prereqs binaries ## Start the local stack in the background; writes .local/cluster.env (REAL_NODE=1 adds a real node: kubelet + containerd)
	$(GO) run ./e2e/cmd/localcluster up $(if $(filter 1,$(REAL_NODE)),--real-node)

.PHONY: cluster-down
cluster-down: ## Stop the local stack started by cluster-up
	$(GO) run ./e2e/cmd/localcluster down

IMAGE_TAG ?= dev
.PHONY: image
image: ## Build the dispatcher and example worker images without Docker: bin/images/dispatcher.tar, bin/images/worker.tar
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o bin/dispatcher ./cmd/dispatcher
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o bin/worker ./examples/worker
	$(GO) run ./hack/image -binary bin/dispatcher -ref ghcr.io/kubedispatch/dispatcher:$(IMAGE_TAG) -out bin/images/dispatcher.tar -expose 8080/tcp,8081/tcp
	$(GO) run ./hack/image -binary bin/worker -ref ghcr.io/kubedispatch/worker:$(IMAGE_TAG) -out bin/images/worker.tar

.PHONY: build
build: ## Build bin/dispatcher
	$(GO) build -o bin/dispatcher ./cmd/dispatcher

.PHONY: generate
generate: ## Regenerate deepcopy code, CRDs and RBAC
	bash hack/generate.sh

.PHONY: verify
verify: generate ## Fail when generated files are stale or code is unformatted
	@git diff --exit-code -- api deploy || (echo "generated files are stale: run make generate and commit" && exit 1)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

GOLANGCI_LINT_VERSION ?= v2.15.0
.PHONY: lint
lint: ## golangci-lint (errorlint, depguard, importas, revive exported, staticcheck); built once by go run
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION) run ./...

.PHONY: fmt
fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')
