# Refport: `make dev` serves the Worker locally with a seeded demo program; `make test` runs
# every test. Both install what is missing first and are safe to run again.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
export PATH := $(CURDIR)/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)

WORKER_BUILD_VERSION := 0.8.7
# wasm-bindgen-cli must match the wasm-bindgen crate in Cargo.lock exactly.
WASM_BINDGEN_VERSION := $(shell awk '/^name = "wasm-bindgen"$$/ {getline; gsub(/"/, "", $$3); print $$3}' Cargo.lock)
PORT ?= 8787
PERSIST ?= .wrangler/state
STAMP := .wrangler/stamps

.PHONY: dev test setup test-deps tools build unit e2e seed clean bench bench-smoke soak

setup: tools $(STAMP)/npm $(STAMP)/venv .dev.vars

# What the end-to-end suites need beyond `setup`: Debian's Chromium for the browser tests (never
# a browser download) and the SDK's own pinned toolchain.
test-deps: setup $(STAMP)/sdk-npm
	@command -v chromium > /dev/null || { apt-get update -qq && apt-get install -y -qq chromium > /dev/null; }

$(STAMP)/sdk-npm: sdk/package.json sdk/package-lock.json
	cd sdk && npm ci --no-audit --no-fund
	@mkdir -p $(STAMP) && touch $@

tools:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@[ "$$(worker-build --version 2>/dev/null)" = "$(WORKER_BUILD_VERSION)" ] || cargo install --locked --force worker-build@$(WORKER_BUILD_VERSION)
	@[ "$$(wasm-bindgen --version 2>/dev/null)" = "wasm-bindgen $(WASM_BINDGEN_VERSION)" ] || cargo install --force wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION)

$(STAMP)/npm: package.json package-lock.json
	npm ci --no-audit --no-fund
	@mkdir -p $(STAMP) && touch $@

$(STAMP)/venv: tests/requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	@mkdir -p $(STAMP) && touch $@

# Created from the example; later additions to the example are appended, local values kept.
.dev.vars: .dev.vars.example
	@[ -f .dev.vars ] || cp .dev.vars.example .dev.vars
	@while IFS= read -r line; do k=$${line%%=*}; case "$$line" in ''|'#'*) continue;; esac; \
	  grep -q "^$$k=" .dev.vars || echo "$$line" >> .dev.vars; done < .dev.vars.example

build: setup
	bash scripts/build.sh
	bash scripts/build-web.sh

# Schema: the D1 migrations in migrations/ not yet applied to this local D1 (recorded in its
# d1_migrations table). Without stdin wrangler does not ask for confirmation.
seed: build
	wrangler d1 migrations apply DB --local --persist-to $(PERSIST) < /dev/null > /dev/null
	wrangler d1 execute DB --local --persist-to $(PERSIST) --file scripts/seed.sql > /dev/null

dev: seed
	@echo
	@echo "Refport is starting on http://127.0.0.1:$(PORT)"
	@echo "  admin API key: REFPORT_ADMIN_KEY in .dev.vars"
	@echo "  click the demo link:  curl -i -A 'Mozilla/5.0' -H 'Host: go.example.test' http://127.0.0.1:$(PORT)/demo"
	@echo "  list programs:        curl -H \"Authorization: Bearer $$(grep ^REFPORT_ADMIN_KEY .dev.vars | cut -d= -f2)\" http://127.0.0.1:$(PORT)/api/v1/programs"
	@echo "  see the clicks:       curl -H \"Authorization: Bearer $$(grep ^REFPORT_ADMIN_KEY .dev.vars | cut -d= -f2)\" http://127.0.0.1:$(PORT)/api/v1/clicks"
	@echo "  run the cron:         curl 'http://127.0.0.1:$(PORT)/cdn-cgi/handler/scheduled?cron=*/15+*+*+*+*'"
	@echo "  dashboard:            http://127.0.0.1:$(PORT)/dashboard/  (sign in with the admin key)"
	@echo "  partner portal:       mint a token with POST /api/v1/embed-tokens {program_id: prog_demo, partner_id: pn_demo},"
	@echo "                        then open http://127.0.0.1:$(PORT)/embed/referrals?token=..."
	@echo
	REFPORT_SKIP_BUILD=1 wrangler dev --ip 127.0.0.1 --port $(PORT) --persist-to $(PERSIST)

unit: tools
	cargo test --quiet -p refport-core

e2e: build test-deps
	.venv/bin/python -m pytest -q --durations=25 tests

test: build unit e2e

bench: build
	bash bench/run.sh

bench-smoke: build
	bash bench/run.sh --smoke

# The randomized money soak (tests/soak/README.md): a seeded sequence of operations with Stripe
# faults, then the ledger invariants. A failure replays with `make soak SOAK_SEED=<seed>`.
SOAK_SEED ?= $(shell echo $$RANDOM)
SOAK_OPS ?= 10000
SOAK_FAULTS ?= 500
soak: build
	.venv/bin/python tests/soak/soak.py --seed $(SOAK_SEED) --ops $(SOAK_OPS) --faults $(SOAK_FAULTS)

clean:
	rm -rf build target .wrangler
