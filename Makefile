# Presence cluster. `make help` lists the targets.
GO        ?= go
BIN       ?= bin
PROTOC    ?= protoc
PKGS      ?= ./...
FUZZTIME  ?= 10s

.PHONY: help run build test test-short vet fmt proto fuzz bench tidy clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

run: ## run one node on the embedded defaults (:8000, ./data)
	$(GO) run ./cmd/presenced

build: ## build presenced and presencectl into ./bin (static)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/presenced ./cmd/presenced
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/presencectl ./cmd/presencectl

test: ## the whole test suite: everything under -race, then the in-process cluster tests without it
	@if [ -z "$$PRESENCE_TEST_POSTGRES" ]; then echo "NOTE: PRESENCE_TEST_POSTGRES is not set: the PostgreSQL store and cluster-on-PostgreSQL tests are SKIPPED (eval \"\$$(sudo bash .ci/postgres.sh)\" starts a local server and sets it)"; fi
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 15m $(PKGS)
	@# Several protoactor-go remotes in one process race inside the library
	@# (grpclog.SetLoggerV2), so in-process multi-node tests are built !race.
	$(GO) test -count=1 -timeout 15m ./e2e/cluster/...

test-short: ## unit tests only
	$(GO) test -race -short -count=1 $(PKGS)

fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

proto: ## regenerate messages/*.pb.go (needs protoc and protoc-gen-go v1.36.12)
	cd messages && $(PROTOC) --go_out=. --go_opt=paths=source_relative presence.proto

fuzz: ## run each fuzz target for FUZZTIME
	$(GO) test ./api -run '^$$' -fuzz '^FuzzParseStatusUpdate$$' -fuzztime $(FUZZTIME)
	$(GO) test ./api -run '^$$' -fuzz '^FuzzParseUserIDs$$' -fuzztime $(FUZZTIME)
	$(GO) test ./api -run '^$$' -fuzz '^FuzzAppendString$$' -fuzztime $(FUZZTIME)

bench: ## Go benchmarks of the hot paths
	$(GO) test -run '^$$' -bench . -benchmem ./api/... ./actors/... ./store/...

tidy: ## go mod tidy
	$(GO) mod tidy

clean: ## remove build output
	rm -rf $(BIN)
