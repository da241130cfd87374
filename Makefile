# berth — see README.md. `make demo` and `make test` do all set-up on a fresh
# Debian 12 machine as root.
SHELL := /bin/bash
GO ?= go
PREFIX ?= /usr/local
SYSTEMDDIR ?= /etc/systemd/system
export PATH := /usr/local/go/bin:$(PATH)
export GOFLAGS ?= -buildvcs=false
# encoding/json on the v2 engine: the first decode of a config.json (which
# both the runtime and the container init pay, cold, at every create) takes
# half the time.
export GOEXPERIMENT := jsonv2
GOFILES := $(shell git ls-files '*.go' 2>/dev/null)
# Packages a test or the demo uses; scripts/deps.sh installs the missing ones.
DEBS := gcc libc6-dev pkg-config libseccomp-dev busybox-static runc containerd podman skopeo umoci procps docker-registry isal containernetworking-plugins iproute2 iptables util-linux docker.io qemu-system-x86 linux-image-cloud-amd64 erofs-utils e2fsprogs cpio

.PHONY: all deps build install demo test check fmt vet tidy freebsd unit critools critest compose kubernetes cluster-test testcontainers conformance conformance-quick bench parity docs clean

all: build

deps:
	@scripts/deps.sh $(DEBS)

# Static: the binary starts twice per container (runtime and init), and
# skipping the dynamic loader saves ~0.6 ms each time. netgo/osusergo keep
# glibc's NSS (which cannot be linked statically) out. grpcnotrace keeps
# gRPC's request tracing (x/net/trace, html/template) out: its package
# initialisation is paid by every start of the binary.
# The container init (cmd/berth-rt: the runtime's init alone) is
# built first and embedded (embedinit): every container and exec starts
# it instead of the whole binary, in about half the time. Likewise the
# guest of a VM (cmd/berth-guest: the agent, the runtime and the file
# helper) is built first and embedded (embedguest): the initramfs's
# /init, a fraction of the whole binary's size. And a VM's shim
# (cmd/berth-vmm, embedvmm), which lives as long as its VM: its memory is
# each VM container's.
VERSION ?= 0.1.0-dev+$(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
TAGS := netgo,osusergo,sqlite_omit_load_extension,grpcnotrace
STATIC := -linkmode external -extldflags "-static"
SET_VERSION := -X github.com/berth-dev/berth/internal/cli.Version=$(VERSION) -X github.com/berth-dev/berth/internal/runtimecli.Version=$(VERSION)
BUILD_FLAGS := -trimpath -tags $(TAGS),embedinit,embedguest,embedvmm -ldflags '$(SET_VERSION) $(STATIC)'
INIT_BUILD_FLAGS := -trimpath -tags $(TAGS) -ldflags '-s -w $(SET_VERSION) $(STATIC)'
EMBEDDED_INIT := internal/runtime/linux/initexe/berth-rt
EMBEDDED_GUEST := internal/runtime/vm/guestexe/berth-guest
EMBEDDED_SHIM := internal/runtime/vm/vmmexe/berth-vmm

build:
	CGO_ENABLED=1 $(GO) build $(INIT_BUILD_FLAGS) -o $(EMBEDDED_INIT) ./cmd/berth-rt
	CGO_ENABLED=1 $(GO) build $(INIT_BUILD_FLAGS) -o $(EMBEDDED_GUEST) ./cmd/berth-guest
	CGO_ENABLED=1 $(GO) build $(INIT_BUILD_FLAGS) -o $(EMBEDDED_SHIM) ./cmd/berth-vmm
	CGO_ENABLED=1 $(GO) build $(BUILD_FLAGS) -o bin/berth ./cmd/berth
	ln -sf berth bin/berth-runtime

install: build
	install -D -m 0755 bin/berth $(DESTDIR)$(PREFIX)/bin/berth
	ln -sf berth $(DESTDIR)$(PREFIX)/bin/berth-runtime
	install -d $(DESTDIR)$(SYSTEMDDIR)
	sed 's|@BINDIR@|$(PREFIX)/bin|' contrib/systemd/berth.service > $(DESTDIR)$(SYSTEMDDIR)/berth.service
	chmod 0644 $(DESTDIR)$(SYSTEMDDIR)/berth.service

demo: deps build
	scripts/demo.sh

check: fmt vet tidy freebsd

fmt:
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Modules of their own, for dependencies that must stay out of berth's go.mod.
TEST_MODULES := test/testcontainers

vet:
	$(GO) vet ./...
	@for m in $(TEST_MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done

# go.mod and go.sum say exactly what the code imports.
tidy:
	@for m in . $(TEST_MODULES); do (cd $$m && $(GO) mod tidy -diff >/dev/null) || { echo "$$m: go.mod/go.sum are not tidy: run go mod tidy there"; (cd $$m && $(GO) mod tidy -diff); exit 1; }; done

# The jail driver must stay possible: everything builds for FreeBSD.
freebsd:
	GOOS=freebsd GOARCH=amd64 CGO_ENABLED=0 $(GO) build ./...
	@echo "GOOS=freebsd go build ./...: ok"

# Unit and privileged integration tests (the latter need root and skip,
# saying why, without it). BERTH_BIN points them at the built binary.
# BERTH_TEST_REQUIRE_REGISTRY: a missing registry fails the run, not skips.
# BERTH_CRICTL: cri-tools' crictl (tools/critools) for the CRI tests;
# BERTH_COMPOSE: docker compose (tools/compose) for the compose tests.
# BERTH_KUBERNETES: the kubelet and kubectl (tools/kubernetes) for the
# standalone kubelet test (the cluster test is make cluster-test's).
# -timeout bounds the slowest package, test/integration (~18 min here); a
# berth command of its that hangs fails its test after 4 minutes with the
# stuck processes' stacks, and a minute before the -timeout the package
# ends itself saying which tests ran and what their processes waited on
# (test/integration/hang_test.go): the last lines of the output say it.
unit: build critools compose kubernetes
	BERTH_BIN=$(CURDIR)/bin/berth BERTH_CRICTL=$(CURDIR)/.cache/critools/bin/crictl BERTH_COMPOSE=$$(scripts/build-compose.sh) BERTH_KUBERNETES=$(CURDIR)/.cache/kubernetes/bin BERTH_TEST_REQUIRE_REGISTRY=1 $(GO) test -count=1 -timeout 30m ./...

# crictl and critest, the release matching the CRI API served, into
# .cache/critools/bin (built once per tools/critools/go.sum).
critools:
	@scripts/build-critools.sh >/dev/null

# kubelet, kube-apiserver, kube-controller-manager, kube-scheduler and
# kubectl, the Kubernetes release matching the CRI API served, into
# .cache/kubernetes/bin (built once per tools/kubernetes/go.sum; minutes).
kubernetes:
	@scripts/build-kubernetes.sh >/dev/null

# A single-node cluster on berth serve (test/integration/cluster_test.go):
# Debian's etcd, the apiserver, controller manager, scheduler and the
# kubelet; a Deployment scaled 3 -> 5 -> 3 and rolled out to another
# image, kubectl exec, logs -f and port-forward, a Job. Not in make test.
CLUSTER_DEBS := etcd-server
cluster-test: build critools kubernetes
	@scripts/deps.sh $(DEBS) $(CLUSTER_DEBS)
	cd test/integration && BERTH_CLUSTER_TEST=1 BERTH_BIN=$(CURDIR)/bin/berth BERTH_CRICTL=$(CURDIR)/.cache/critools/bin/crictl BERTH_KUBERNETES=$(CURDIR)/.cache/kubernetes/bin BERTH_TEST_REQUIRE_REGISTRY=1 $(GO) test -count=1 -timeout 15m -run 'TestKubernetesCluster$$' -v .

# docker compose, the release tools/compose pins, built once into
# .cache/compose (the compose test and bench run it against berth serve).
compose:
	@scripts/build-compose.sh >/dev/null

# testcontainers-go, unchanged, against `berth serve` (its own module).
testcontainers: build
	cd test/testcontainers && BERTH_BIN=$(CURDIR)/bin/berth $(GO) test -count=1 -timeout 10m ./...

# A representative part of the OCI validation suite, side by side with runc.
CONFORMANCE_QUICK := default linux_ns_itype linux_ns_path misc_props linux_masked_paths linux_readonly_paths linux_sysctl linux_uid_mappings process_capabilities hooks_stdin
conformance-quick: build
	CONFORMANCE_STRICT=1 CONFORMANCE_TESTS="$(CONFORMANCE_QUICK)" scripts/conformance.sh

conformance: build
	CONFORMANCE_STRICT=1 scripts/conformance.sh

test: deps check unit testcontainers conformance-quick

# README's command reference, generated from the CLI; `make test` fails
# while it differs (internal/cli/docs_test.go).
docs:
	BERTH_UPDATE_README=1 $(GO) test -count=1 -run 'TestREADMECommandReference$$' ./internal/cli

# critest, cri-tools' CRI validation suite, whole, against berth serve
# (stand-in images on a loopback registry that mirrors registry.k8s.io and
# gcr.io); it prints passed, failed and skipped. `make test` runs the
# image service's and runtime info's specs, which must all pass.
critest: deps build critools
	set -o pipefail; cd test/integration && BERTH_CRITEST=full BERTH_CRITEST_OUTPUT=$(CURDIR)/.cache/critest.log BERTH_BIN=$(CURDIR)/bin/berth BERTH_CRICTL=$(CURDIR)/.cache/critools/bin/crictl $(GO) test -count=1 -timeout 40m -run 'TestCritest$$' -v . | grep -E '^(---|ok|FAIL)|critest|\[FAIL\]'

# The docker parity table (test/integration/parity_test.go) in full:
# every command line through the docker CLI, against Debian's dockerd on
# a private root and network namespace, and through berth; it prints
# same / intended / different. `make test` runs its quick part.
parity: deps build
	set -o pipefail; cd test/integration && BERTH_PARITY=full BERTH_BIN=$(CURDIR)/bin/berth $(GO) test -count=1 -run 'TestDockerParity$$' -v . | grep -E '^(---|docker parity|ok|FAIL)|different:|intended:|todo:'

bench: deps build compose
	scripts/bench.sh

clean:
	rm -rf bin .cache internal/runtime/linux/initexe internal/runtime/vm/guestexe internal/runtime/vm/vmmexe
