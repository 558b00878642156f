# icebox — build, run, test, install.
#   make run      a local call page on http://localhost:8080, no config file
#   make test     vet, then every test with the race detector, then short fuzz runs
#   make bench    signaling and TURN relay benchmarks (TURN against coturn when installed)
#   make install  binary, systemd unit, sysusers entry and /etc/icebox/icebox.yaml
#                 (honours DESTDIR and PREFIX)

GO      ?= go
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  := $(PREFIX)/bin
UNITDIR ?= /etc/systemd/system
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 15s

.PHONY: all build run test fuzz bench install uninstall clean

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/icebox ./cmd/icebox

# No config file: defaults, with generated state kept in ./.state.
run:
	$(GO) run ./cmd/icebox -state-dir .state

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) fuzz

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzFromBytes$$' -fuzztime $(FUZZTIME) ./config
	$(GO) test -run '^$$' -fuzz '^FuzzDispatch$$' -fuzztime $(FUZZTIME) ./signaling
	$(GO) test -run '^$$' -fuzz '^FuzzListeners$$' -fuzztime $(FUZZTIME) ./turnsrv

# Builds only when bin/icebox is missing, so `make build` as a user and
# `sudo make install` afterwards needs no Go toolchain for root.
# Benchmarks (not tests): figures go to docs/BENCHMARKS.md.
bench: build
	$(GO) run ./bench/sigbench -icebox bin/icebox -conns 10000 -rate 2000 -duration 10s
	$(GO) run ./bench/turnbench -icebox bin/icebox -allocs 100 -rate 20000 -duration 8s -rounds 2 -mem-allocs 2000
	$(GO) run ./bench/turnbench -icebox bin/icebox -allocs 100 -rate 20000 -burst 8 -duration 8s -rounds 2 -mem-allocs 0
	$(GO) run ./bench/turnbench -icebox bin/icebox -allocs 200 -rate 50000 -duration 8s -rounds 2 -mem-allocs 0

install:
	@[ -x bin/icebox ] || $(MAKE) build
	install -D -m 0755 bin/icebox $(DESTDIR)$(BINDIR)/icebox
	install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)/usr/lib/sysusers.d
	sed 's|@BINDIR@|$(BINDIR)|g' systemd/icebox.service > $(DESTDIR)$(UNITDIR)/icebox.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/icebox.service
	install -m 0644 systemd/icebox.sysusers $(DESTDIR)/usr/lib/sysusers.d/icebox.conf
	install -d -m 0755 $(DESTDIR)/etc/icebox
	@if [ -e $(DESTDIR)/etc/icebox/icebox.yaml ]; then \
		echo "keeping existing $(DESTDIR)/etc/icebox/icebox.yaml"; \
	else \
		install -m 0640 docs/icebox.example.yaml $(DESTDIR)/etc/icebox/icebox.yaml; \
	fi
	@if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null; then \
		systemd-sysusers /usr/lib/sysusers.d/icebox.conf && \
		chgrp icebox /etc/icebox/icebox.yaml && \
		systemctl daemon-reload 2>/dev/null || true; \
	fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/icebox $(DESTDIR)$(UNITDIR)/icebox.service $(DESTDIR)/usr/lib/sysusers.d/icebox.conf
	@echo "left $(DESTDIR)/etc/icebox and /var/lib/icebox in place"

clean:
	rm -rf bin .state
