# icebox — build, run, test, install.
#   make run      a local call page on http://localhost:8080, no config file
#   make test     go.mod tidy, vet, then every test with the race detector (the browser and
#                 namespace tests of e2e/ after the rest, one package at a time, its tests side
#                 by side within a budget: e2e/lanes_test.go), short fuzz runs, then a
#                 3-minute soak; e2e's longest browser scenarios are left to test-long
#   make test-long e2e's longest browser scenarios (six pages, restarts, the NAT lab,
#                 Firefox's page; e2e/lanes_test.go); CI runs make test, then this
#   make bench    signaling, TURN relay and SFU benchmarks (TURN against coturn when installed,
#                 and against its floor: icebox's sockets and system calls with no TURN work;
#                 COTURN417=/path/to/turnserver adds a coturn 4.17 built from source)
#   make soak     icebox under churn for SOAK (default 60m), one node and a cluster of
#                 three side by side; fails if RSS, descriptors, goroutines or heap keep
#                 growing (make test runs it for 3 minutes)
#   make install  binary, systemd unit, sysusers and sysctl entries, /etc/icebox/icebox.yaml
#                 (honours DESTDIR and PREFIX)
#   make dist     release artifacts in dist/: static linux binaries, .deb and .rpm
#                 packages, an SBOM, SHA256SUMS (signed with SIGN_KEY=<gpg key id>)
#   make dist-check        two clean clones of HEAD, `make dist` in each, cmp every artifact
#   make dist-install-test the package installed, upgraded, removed and purged on a
#                 debootstrapped Debian 12 root (built once, cached in DEBROOT_CACHE)

GO      ?= go
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  := $(PREFIX)/bin
UNITDIR ?= /etc/systemd/system
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
FUZZ_CONFIG    ?= 60000x
FUZZ_SIGNALING ?= 60000x
FUZZ_TURN      ?= 20000x
FUZZ_PEER      ?= 60000x
FUZZ_CLASSIFY  ?= 80000x
FUZZ_FRAMING   ?= 100000x
FUZZ_GRO       ?= 20000x

SOAK        ?= 60m
SOAK_SAMPLE ?= 10s
SOAK_RESTART ?= 10m

.PHONY: all build run test test-long typecheck fuzz bench soak install uninstall clean dist dist-sign dist-check dist-install-test

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/icebox ./cmd/icebox

# No config file, not even an installed /etc/icebox/icebox.yaml: the
# built-in defaults, with generated state kept in ./.state.
run:
	$(GO) run ./cmd/icebox -config '' -state-dir .state

# `go mod tidy -diff` (Go 1.23+) prints what tidy would change and exits 1,
# so an untidy go.mod or go.sum fails the tests. It reads the tests of
# dependencies too: offline it needs a module cache that already holds
# them (one online `go mod tidy` fills it).
test:
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(MAKE) typecheck
	$(GO) test -race -count=1 -timeout 30m $$($(GO) list ./... | grep -v '/e2e')
	$(GO) test -race -count=1 -timeout 30m -parallel 64 -short ./e2e
	$(GO) test -race -count=1 -timeout 30m ./e2e/partition
	$(MAKE) fuzz
	$(MAKE) soak SOAK=3m SOAK_SAMPLE=5s SOAK_RESTART=0

test-long:
	ICEBOX_E2E_LONG=1 $(GO) test -race -count=1 -timeout 30m -parallel 64 ./e2e

# The call page's JavaScript checked from its JSDoc types (web/tsconfig.json)
# with the TypeScript pinned in package-lock.json, which also brings
# puppeteer-core for the Firefox test. Without npm: skipped, but not in CI.
typecheck:
	@if command -v npm >/dev/null 2>&1; then \
		[ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund; \
		node_modules/.bin/tsc -p web/tsconfig.json && echo "typecheck: web/static passes tsc --checkJs"; \
	elif [ -n "$$CI" ]; then echo "typecheck: npm is missing (apt-get install nodejs npm)" >&2; exit 1; \
	else echo "typecheck: skipped, npm is missing (apt-get install nodejs npm)"; fi

# Fuzz budgets are counts of runs, not durations: with a duration, Go
# 1.26's fuzz coordinator can fail a clean run with "context deadline
# exceeded" as the time runs out (golang/go#75804, fixed in Go 1.27).
# Each count is about 5 s on a 2-core machine; `make fuzz FUZZ_TURN=1000000x`
# and the like fuzz longer.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzFromBytes$$' -fuzztime $(FUZZ_CONFIG) ./config
	$(GO) test -run '^$$' -fuzz '^FuzzDispatch$$' -fuzztime $(FUZZ_SIGNALING) ./signaling
	$(GO) test -run '^$$' -fuzz '^FuzzListeners$$' -fuzztime $(FUZZ_TURN) ./turnsrv
	$(GO) test -run '^$$' -fuzz '^FuzzPeerAddress$$' -fuzztime $(FUZZ_PEER) ./turnsrv
	$(GO) test -run '^$$' -fuzz '^FuzzClassify$$' -fuzztime $(FUZZ_CLASSIFY) ./turnsrv
	$(GO) test -run '^$$' -fuzz '^FuzzFraming$$' -fuzztime $(FUZZ_FRAMING) ./turnsrv
	$(GO) test -run '^$$' -fuzz '^FuzzGROSplit$$' -fuzztime $(FUZZ_GRO) ./turnsrv/udprelay

# Builds only when bin/icebox is missing, so `make build` as a user and
# `sudo make install` afterwards needs no Go toolchain for root.
# Benchmarks (not tests): figures go to docs/BENCHMARKS.md.
# A coturn 4.17 turnserver built from its source, for make bench (optional).
COTURN417 ?=
COTURN417_FLAG := $(if $(COTURN417),-coturn417 $(COTURN417))

bench: build
	$(GO) run ./bench/sigbench -icebox bin/icebox -conns 10000 -rate 2000 -duration 10s
	$(GO) run ./bench/sigbench -icebox bin/icebox -nodes 3 -conns 10000 -rate 2000 -duration 10s
	$(GO) run ./bench/turnbench -icebox bin/icebox -allocs 100 -rate 20000 -duration 8s -rounds 2 -mem-allocs 2000
	$(GO) run ./bench/turnbench -icebox bin/icebox -allocs 100 -rate 20000 -burst 8 -duration 8s -rounds 2 -mem-allocs 0
	$(GO) run ./bench/turnbench -icebox bin/icebox -allocs 200 -rate 50000 -duration 8s -rounds 2 -mem-allocs 0
	$(GO) run ./bench/turnbench -icebox bin/icebox -video -rate 16000 -duration 6s -rounds 4 -mem-allocs 0 -floor $(COTURN417_FLAG)
	$(GO) run ./bench/turnbench -icebox bin/icebox -uclient tcp -allocs 20 -size 1100 -rate 4000 -duration 5s -rounds 2 -mem-allocs 0 $(COTURN417_FLAG)
	$(GO) run ./bench/turnbench -icebox bin/icebox -uclient tls -allocs 20 -size 1100 -rate 4000 -duration 5s -rounds 2 -mem-allocs 0 $(COTURN417_FLAG)
	$(GO) run ./bench/sfubench -icebox bin/icebox -publishers 5 -subscribers 5 -duration 8s
	@# A 25-person meeting, icebox on CPU 0 and its clients on the others (two cores or more).
	if [ "$$(nproc)" -ge 2 ]; then $(GO) build -o bin/sfubench ./bench/sfubench && \
		taskset -c 1-$$(($$(nproc)-1)) bin/sfubench -icebox bin/icebox -meeting -publishers 25 -subscribers 0 -speakers 2 -server-cpu 0 -duration 10s; fi

# A long churn run (bench/soak): one node and a cluster of three side by
# side, for SOAK, sampled every SOAK_SAMPLE, one node of each restarted
# every SOAK_RESTART. `make test` runs it for 3 minutes without a
# restart: each process's first minute is warm-up, and a restart half
# way would leave half a minute of each life to judge.
soak: build
	$(GO) run ./bench/soak -icebox bin/icebox -duration $(SOAK) -sample $(SOAK_SAMPLE) -restart $(SOAK_RESTART) -nodes 1,3

install:
	@[ -x bin/icebox ] || $(MAKE) build
	install -D -m 0755 bin/icebox $(DESTDIR)$(BINDIR)/icebox
	install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)/usr/lib/sysusers.d $(DESTDIR)/usr/lib/sysctl.d
	sed 's|@BINDIR@|$(BINDIR)|g' systemd/icebox.service > $(DESTDIR)$(UNITDIR)/icebox.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/icebox.service
	install -m 0644 systemd/icebox.sysusers $(DESTDIR)/usr/lib/sysusers.d/icebox.conf
	install -m 0644 systemd/icebox.sysctl $(DESTDIR)/usr/lib/sysctl.d/60-icebox.conf
	install -d -m 0755 $(DESTDIR)/etc/icebox
	@if [ -e $(DESTDIR)/etc/icebox/icebox.yaml ]; then \
		echo "keeping existing $(DESTDIR)/etc/icebox/icebox.yaml"; \
	else \
		install -m 0640 docs/icebox.example.yaml $(DESTDIR)/etc/icebox/icebox.yaml; \
	fi
	@if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null; then \
		systemd-sysusers /usr/lib/sysusers.d/icebox.conf && \
		chgrp icebox /etc/icebox/icebox.yaml && \
		{ sysctl -q -p /usr/lib/sysctl.d/60-icebox.conf || true; } && \
		systemctl daemon-reload 2>/dev/null || true; \
	fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/icebox $(DESTDIR)$(UNITDIR)/icebox.service $(DESTDIR)/usr/lib/sysusers.d/icebox.conf \
		$(DESTDIR)/usr/lib/sysctl.d/60-icebox.conf
	@echo "left $(DESTDIR)/etc/icebox and /var/lib/icebox in place"

# Release artifacts. The SBOMs (CycloneDX) list the modules linked into
# each binary, read from its build information. Everything is a function of the commit: the time
# stamped into packages is the commit's (SOURCE_DATE_EPOCH), binaries are
# built with -trimpath and an empty build id, and nfpm and cyclonedx-gomod
# are the versions go.mod pins as tools, so two clean clones of one commit
# give byte-identical files (make dist-check). Only the Go module proxy is
# reached, for modules the cache lacks.
DIST              ?= dist
DIST_ARCHES       ?= amd64 arm64
DIST_FORMATS      ?= deb rpm
SIGN_KEY          ?=
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
COMMIT            ?= $(shell git rev-parse HEAD 2>/dev/null)
# v1.2.3 from a tag v1.2.3; 1.2.3+4.gabcdef1 four commits after it; with
# no tag 0.0.0+git<commit time>.<short commit>, which still sorts by time.
DIST_VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null) && echo "$$v" | sed 's/^v//; s/-\([0-9]*\)-g/+\1.g/' || \
	echo "0.0.0+git$$(date -u -d @$(SOURCE_DATE_EPOCH) +%Y%m%d%H%M%S).$$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)")
DIST_LDFLAGS := -s -w -buildid= -X main.version=$(DIST_VERSION) -X main.commit=$(COMMIT)
# systemd/package/nfpm.yaml names this folder.
DIST_STAGE   := bin/dist-stage

dist:
	@case "$(DIST)" in ""|/|.) echo "refusing DIST=$(DIST)" >&2; exit 1;; esac
	rm -rf $(DIST) $(DIST_STAGE)
	mkdir -p $(DIST) $(DIST_STAGE)
	sed 's|@BINDIR@|/usr/bin|g' systemd/icebox.service > $(DIST_STAGE)/icebox.service
	gzip -n -9 < systemd/package/icebox.8 > $(DIST_STAGE)/icebox.8.gz
	touch -d @$(SOURCE_DATE_EPOCH) $(DIST_STAGE)/icebox.service $(DIST_STAGE)/icebox.8.gz
	set -e; for arch in $(DIST_ARCHES); do \
		bin=$(DIST)/icebox_$(DIST_VERSION)_linux_$$arch; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch GOAMD64=v1 GOARM64=v8.0 GOFLAGS=-mod=readonly \
			$(GO) build -trimpath -buildvcs=false -ldflags "$(DIST_LDFLAGS)" -o $$bin ./cmd/icebox; \
		cp $$bin $(DIST_STAGE)/icebox; \
		for fmt in $(DIST_FORMATS); do \
			ARCH=$$arch VERSION=$(DIST_VERSION) SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) \
				$(GO) tool nfpm package --config systemd/package/nfpm.yaml --packager $$fmt --target $(DIST)/; \
		done; \
	done
	set -e; for arch in $(DIST_ARCHES); do \
		$(GO) tool cyclonedx-gomod bin -json -std -noserial -notimestamp -version v$(DIST_VERSION) \
			-output $(DIST)/icebox_$(DIST_VERSION)_linux_$$arch.sbom.cdx.json $(DIST)/icebox_$(DIST_VERSION)_linux_$$arch; \
	done
	cd $(DIST) && sha256sum $$(ls | grep -v SHA256SUMS) > SHA256SUMS
	@if [ -n "$(SIGN_KEY)" ]; then $(MAKE) --no-print-directory dist-sign; fi
	@ls -l $(DIST)

# A detached, ASCII-armoured OpenPGP signature over SHA256SUMS with the gpg
# key SIGN_KEY names (a key id, fingerprint or e-mail in the operator's
# keyring; GNUPGHOME picks another keyring). README "Verify a download".
dist-sign:
	@[ -n "$(SIGN_KEY)" ] || { echo "dist-sign: set SIGN_KEY to a gpg key id" >&2; exit 1; }
	gpg --batch --yes --local-user "$(SIGN_KEY)" --armor --detach-sign --output $(DIST)/SHA256SUMS.asc $(DIST)/SHA256SUMS

# Reproducibility: HEAD cloned twice into fresh folders, `make dist` in
# each (the second with an empty Go build cache, so nothing is reused from
# the first), then every artifact compared byte for byte.
dist-check:
	@set -e; tmp=$$(mktemp -d); trap 'chmod -R u+w $$tmp; rm -rf $$tmp' EXIT; \
	for i in 1 2; do git clone -q --no-local --no-hardlinks "$$(pwd)" $$tmp/clone$$i; done; \
	$(MAKE) -C $$tmp/clone1 dist >$$tmp/make1.log 2>&1 || { cat $$tmp/make1.log; exit 1; }; \
	GOCACHE=$$tmp/gocache $(MAKE) -C $$tmp/clone2 dist >$$tmp/make2.log 2>&1 || { cat $$tmp/make2.log; exit 1; }; \
	n=0; for f in $$(ls $$tmp/clone1/dist); do cmp $$tmp/clone1/dist/$$f $$tmp/clone2/dist/$$f; n=$$((n+1)); done; \
	diff -r $$tmp/clone1/dist $$tmp/clone2/dist >/dev/null; \
	echo "dist-check: $$n artifacts byte-identical from two clean clones of $$(git -C $$tmp/clone1 rev-parse --short HEAD)"

# The package's install, upgrade, remove and purge on a clean Debian 12
# root made by debootstrap (minutes the first time; the root is kept in
# DEBROOT_CACHE and each run works on an overlay of it). `make test` runs
# the same test on an overlay of this machine's own root instead.
DEBROOT_CACHE ?= /var/cache/icebox-test/bookworm-root
DEBIAN_MIRROR ?= http://deb.debian.org/debian
dist-install-test:
	@[ -x $(DEBROOT_CACHE)/usr/bin/dpkg ] || { \
		rm -rf $(DEBROOT_CACHE).tmp && mkdir -p $(DEBROOT_CACHE).tmp && \
		debootstrap --variant=minbase --include=adduser,systemd,procps bookworm $(DEBROOT_CACHE).tmp $(DEBIAN_MIRROR) && \
		rm -rf $(DEBROOT_CACHE) && mv $(DEBROOT_CACHE).tmp $(DEBROOT_CACHE); }
	ICEBOX_DEBROOT=$(DEBROOT_CACHE) $(GO) test -count=1 -v -run 'TestDebInstall' ./systemd

clean:
	rm -rf bin .state dist
