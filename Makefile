# icebox — build, run, test, install.
#   make run      a local call page on http://localhost:8080, no config file
#   make test     go.mod tidy, vet, then every test with the race detector, then short fuzz runs
#   make bench    signaling, TURN relay and SFU benchmarks (TURN against coturn when installed;
#                 COTURN417=/path/to/turnserver adds a coturn 4.17 built from source)
#   make install  binary, systemd unit, sysusers and sysctl entries, /etc/icebox/icebox.yaml
#                 (honours DESTDIR and PREFIX)

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

.PHONY: all build run test typecheck fuzz bench install uninstall clean

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
	$(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) fuzz

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
	$(GO) run ./bench/turnbench -icebox bin/icebox -video -rate 16000 -duration 6s -rounds 4 -mem-allocs 0 $(COTURN417_FLAG)
	$(GO) run ./bench/turnbench -icebox bin/icebox -uclient tcp -allocs 20 -size 1100 -rate 4000 -duration 5s -rounds 2 -mem-allocs 0 $(COTURN417_FLAG)
	$(GO) run ./bench/turnbench -icebox bin/icebox -uclient tls -allocs 20 -size 1100 -rate 4000 -duration 5s -rounds 2 -mem-allocs 0 $(COTURN417_FLAG)
	$(GO) run ./bench/sfubench -icebox bin/icebox -publishers 5 -subscribers 5 -duration 8s

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

clean:
	rm -rf bin .state
