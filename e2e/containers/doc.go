// Package containers is the container test suite: the presence image
// (deploy/Dockerfile) run as a three-node cluster with Docker Compose
// (deploy/docker-compose.yml + docker-compose.host-postgres.yml +
// testdata/compose.test.yml) on a PostgreSQL server of the host, and driven
// only through the nodes' published loopback ports, as a client would.
//
// The tests carry the build tag `containers`, so `go test ./...` does not run
// them. `make test-containers` builds the image, opens a host PostgreSQL to
// the containers (deploy/host-postgres.sh) and runs them; it needs root and a
// running Docker engine:
//
//	make test-containers
//
// By hand, after `make image`:
//
//	eval "$(PRESENCE_PG_CLUSTER=containers PRESENCE_PG_PORT=5433 bash deploy/host-postgres.sh)"
//	go test -tags containers -count=1 -v ./e2e/containers/
//
// Environment: PRESENCE_STORE (the database URL as containers see it) and
// PRESENCE_CT_HOST_STORE (the same database from the host; the suite empties
// it first), both printed by host-postgres.sh; PRESENCE_CT_IMAGE (default
// presence:dev); PRESENCE_CT_NET (the /24 prefix of the test's gossip
// network, default: the first free of 172.29.240-249); PRESENCE_CT_KEEP=1
// leaves the cluster running after the test. The nodes' logs are written to
// deploy/.build/containers-logs.txt.
//
// The subpackage manifests checks the Kubernetes and Compose files without
// Docker and runs in `make test`.
package containers
