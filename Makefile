# Loadswarm. The two commands a newcomer needs:
#   make demo   builds swarm, starts the demo target, runs a test, prints the report
#   make test   the whole test suite (what CI runs)

GO      ?= go
BIN     := bin/swarm
FUZZTIME ?= 5s

.PHONY: all build test unit fuzz vet demo bench bench-big screenshots clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/swarm

vet:
	$(GO) vet ./...
	cd deploy && $(GO) vet ./...

# Packages run one at a time (-p 1): several start clusters or load
# generators, and the machine has 2 cores.
# SWARM_DISK_TESTS=1 runs the store's real full-disk test (a 256 MiB tmpfs);
# where mounting is not allowed it skips and says why.
# deploy/ is its own module (the Kubernetes manifests' checks need
# kustomize and the Kubernetes API types, which swarm does not).
unit:
	SWARM_DISK_TESTS=1 $(GO) test -p 1 -timeout 15m ./...
	cd deploy && $(GO) test -p 1 -timeout 5m ./...

# A short bounded run of every fuzzer; `make fuzz FUZZTIME=5m` digs deeper.
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

test: vet unit fuzz

demo: build
	./scripts/demo.sh

# The loopback benchmark against vegeta and wrk, then the Go benchmarks
# (executor, split over 10,000 nodes, storage, the 50-node query).
bench: build
	./scripts/bench.sh
	$(GO) test -run '^$$' -bench . ./scenarios/
	$(GO) test -run '^$$' -bench . -benchtime 3x ./scheduler/ ./storage/ ./node/

# The README's pictures of the dashboard and the report, taken by the
# browser test on a live 3-node testnet (needs chromium).
screenshots:
	mkdir -p docs
	SWARM_SCREENSHOTS=$(CURDIR)/docs $(GO) test -count=1 -run TestEndToEndDashboard -v ./testnet/

# 50 in-process nodes: convergence, death detection, idle CPU.
bench-big:
	SWARM_BIG=1 $(GO) test -run TestBigCluster -v -timeout 10m ./swarm/

clean:
	rm -rf bin scripts/bench-out
