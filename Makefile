# Loadswarm. The two commands a newcomer needs:
#   make demo   builds swarm, starts the demo target, runs a test, prints the report
#   make test   the whole test suite (what CI runs)

GO      ?= go
BIN     := bin/swarm
FUZZTIME ?= 5s

.PHONY: all build test unit fuzz vet demo bench clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/swarm

vet:
	$(GO) vet ./...

# Packages run one at a time (-p 1): several start clusters or load
# generators, and the machine has 2 cores.
unit:
	$(GO) test -p 1 -timeout 15m ./...

# A short bounded run of every fuzzer; `make fuzz FUZZTIME=5m` digs deeper.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s $$pkg >/dev/null; \
	  done; \
	done

test: vet unit fuzz

demo: build
	./scripts/demo.sh

bench: build
	./scripts/bench.sh

clean:
	rm -rf bin scripts/bench-out
