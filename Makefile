# Presence cluster. `make help` lists the targets.
GO        ?= go
BIN       ?= bin
PROTOC    ?= protoc
PKGS      ?= ./...
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
FUZZTIME  ?= 10s

.PHONY: help run build test test-short vet fmt proto fuzz bench tidy clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

run: ## run one node on the embedded defaults (:8000, ./data)
	$(GO) run ./cmd/presenced

build: ## build presenced and presencectl into ./bin (static)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/presenced ./cmd/presenced
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
	$(GO) test ./wire -run '^$$' -fuzz '^FuzzAppendString$$' -fuzztime $(FUZZTIME)
	$(GO) test ./api/ws -run '^$$' -fuzz '^FuzzWebSocketFrame$$' -fuzztime $(FUZZTIME)
	$(GO) test ./api/auth -run '^$$' -fuzz '^FuzzVerifyToken$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 100x
	$(GO) test ./api/auth -run '^$$' -fuzz '^FuzzParsePublicKeys$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 100x

bench: ## Go benchmarks of the hot paths
	$(GO) test -run '^$$' -bench . -benchmem ./api/... ./actors/... ./store/...

tidy: ## go mod tidy
	$(GO) mod tidy

clean: ## remove build output
	rm -rf $(BIN)

# ---- container image and container test suite (deploy/README.md) ----------
IMAGE         ?= presence:dev
IMAGE_CTX     ?= deploy/.build
CA_CERTS      ?= /etc/ssl/certs/ca-certificates.crt
# The container suite runs its own PostgreSQL cluster on the host (not the
# 5432 one of `make test`), opened to the Docker networks by host-postgres.sh.
CT_PG_CLUSTER ?= containers
CT_PG_PORT    ?= 5433

.PHONY: image test-containers

image: ## build the FROM-scratch image $(IMAGE) around static binaries (needs docker)
	rm -rf $(IMAGE_CTX) && mkdir -p $(IMAGE_CTX)/data
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o $(IMAGE_CTX)/presenced ./cmd/presenced
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(IMAGE_CTX)/presencectl ./cmd/presencectl
	@# FROM scratch has no dynamic loader: refuse a binary that wants one.
	@for b in presenced presencectl; do \
		if readelf -l $(IMAGE_CTX)/$$b 2>/dev/null | grep -q 'program interpreter'; then echo "$$b is not statically linked"; exit 1; fi; \
	done
	cp $(CA_CERTS) $(IMAGE_CTX)/ca-certificates.crt
	printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/data:/sbin/nologin\n' > $(IMAGE_CTX)/passwd
	printf 'root:x:0:\nnonroot:x:65532:\n' > $(IMAGE_CTX)/group
	docker build -t $(IMAGE) -f deploy/Dockerfile \
		--label org.opencontainers.image.revision=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
		$(IMAGE_CTX)

test-containers: image ## container suite: 3 nodes in Docker on a host PostgreSQL (root + docker; about 4 min)
	eval "$$(PRESENCE_PG_CLUSTER=$(CT_PG_CLUSTER) PRESENCE_PG_PORT=$(CT_PG_PORT) bash deploy/host-postgres.sh)" && \
	PRESENCE_CT_IMAGE=$(IMAGE) $(GO) test -tags containers -count=1 -timeout 12m -v ./e2e/containers/...
