# boxoffice — every set-up step a fresh machine needs, idempotent.
#   make serve   what serving needs (compiler, Abseil, SQLite, the `server` extra), build, then the
#                HTTP server on 127.0.0.1:8000 with a demo concert
#   make test    the dev tools too, build, then every test (C++, C++ under ASan+UBSan, a short
#                fuzzing run, Python, HTTP incl. schemathesis, the wheel, lint, types, a tiny run
#                of every benchmark)
#   make wheel   the self-contained wheel in dist/ (installs without a compiler or Abseil)
#   make cluster the same API from a one-machine cluster (NATS JetStream, replicas, workers);
#                make cluster-down stops it
#   make demo    a small ticket drop through the engine
#   make bench   the benchmarks (docs/benchmarks.md);  make soak / make fuzz   the long randomized
#                tests, the simulator and the fuzzers (docs/reliability.md)
SHELL := /bin/bash
.DEFAULT_GOAL := test

VENV     := .venv
PY       := $(VENV)/bin/python
PIP      := $(VENV)/bin/pip
JOBS     ?= $(shell nproc)
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Serving needs only the compiler and the two libraries the core links (and curl and jq, for the
# README's walkthrough); the tests, benchmarks and fuzzers add the rest: Catch2, the Redis and
# PostgreSQL baselines, wrk, clang's libFuzzer.
APT_SERVE := g++ cmake libabsl-dev libsqlite3-dev python3-venv curl jq
APT_DEV   := catch2 redis-server postgresql wrk clang libclang-rt-14-dev chromium chromium-driver
SERVE_STAMP := $(VENV)/.serve-stamp
DEV_STAMP   := $(VENV)/.dev-stamp

.PHONY: cluster cluster-down bootstrap bootstrap-serve build cpp-test cpp-asan py-test lint typecheck test demo serve openapi bench bench-smoke soak fuzz fuzz-smoke wheel wheel-test clean

# Installs the Debian packages of $(1) that are missing.
apt_install = missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
  if [ -n "$$missing" ]; then \
    echo "installing Debian packages:$$missing"; \
    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
  fi
# pip-installs lists of pyproject.toml, so each is written once, there: the build requirements,
# the dependencies, and the extras named in $(1).
pip_install_extras = $(PY) -c 'import sys, tomllib; p = tomllib.load(open("pyproject.toml", "rb")); \
  extras = p["project"]["optional-dependencies"]; \
  print(*p["build-system"]["requires"], *p["project"]["dependencies"], \
        *(r for name in sys.argv[1:] for r in extras[name]), sep="\n")' $(1) \
  | $(PIP) install -q -r /dev/stdin

# What serving needs: the toolchain that builds the core, and the `server` extra.
$(SERVE_STAMP): pyproject.toml
	@$(call apt_install,$(APT_SERVE))
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(call pip_install_extras,server)
	@touch $@

# What the tests, benchmarks and fuzzers add: the `dev`, `bench` and `client` extras and Debian's tools.
$(DEV_STAMP): $(SERVE_STAMP)
	@$(call apt_install,$(APT_DEV))
	$(call pip_install_extras,server dev bench client)
	@touch $@

bootstrap-serve: $(SERVE_STAMP)
bootstrap: $(DEV_STAMP)

# The Python package, built by scikit-build-core (incremental: build/ is kept); editable, so
# Python sources are used in place and only C++ changes need `make build` again.
build: bootstrap-serve
	$(PIP) install -q --no-build-isolation --no-deps --editable .

# The self-contained wheel in dist/, built in the build directory of `make build` (nothing is
# compiled again), then repaired by auditwheel: the Abseil libraries are copied into it
# (boxoffice.libs/) and the tag becomes manylinux for the glibc and libstdc++ it needs.
# SQLite stays the system's shared libsqlite3.so.0, the one Python's own sqlite3 module loads:
# two SQLite copies in one process do not see each other's POSIX locks, so a sqlite3 connection
# closed on the store deletes the engine's write-ahead log under it (acknowledged writes lost).
# Debian's static Abseil cannot be linked in instead: its archives are not position-independent
# (local-exec TLS), which a shared module cannot hold.
wheel: bootstrap
	rm -rf build/wheel-unrepaired dist/boxoffice-*.whl
	$(PIP) wheel -q --no-build-isolation --no-deps -w build/wheel-unrepaired .
	PATH="$(abspath $(VENV))/bin:$$PATH" auditwheel repair --exclude libsqlite3.so.0 -w dist \
	  build/wheel-unrepaired/boxoffice-*.whl

# The wheel installed into a fresh virtual environment: the README's tour, no system Abseil,
# `boxoffice serve --demo` from its server extra (part of `make test`).
wheel-test: wheel
	$(PY) -m pytest -q tests/packaging

build/cpp/CMakeCache.txt:
	cmake -S . -B build/cpp -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBOXOFFICE_BUILD_TESTS=ON -DBOXOFFICE_WERROR=ON

cpp-test: bootstrap build/cpp/CMakeCache.txt
	cmake --build build/cpp -j $(JOBS)
	ctest --test-dir build/cpp --output-on-failure -j $(JOBS)

build/asan/CMakeCache.txt:
	cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DBOXOFFICE_BUILD_TESTS=ON -DBOXOFFICE_SANITIZE=ON

cpp-asan: bootstrap build/asan/CMakeCache.txt
	cmake --build build/asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir build/asan --output-on-failure -j $(JOBS)

py-test: build bootstrap
	BOXOFFICE_REQUIRE_BROWSER=1 $(PY) -m pytest -q  # the browser tests may not skip here

lint: bootstrap
	$(VENV)/bin/ruff check python api tests bench notebooks
	$(VENV)/bin/ruff format --check python api tests bench notebooks

typecheck: build bootstrap
	$(VENV)/bin/mypy
	for dir in tests/python tests/api tests/cluster tests/web tests/packaging; do \
	  $(VENV)/bin/mypy --allow-untyped-defs --allow-incomplete-defs --allow-untyped-calls \
	    --disable-error-code=no-untyped-call $$dir || exit 1; \
	done

test: cpp-test cpp-asan fuzz-smoke py-test wheel-test lint typecheck bench-smoke

# Benchmarks (docs/benchmarks.md): one table, and bench/results/<date>.json. The baselines
# (Redis, PostgreSQL) and the load generator (wrk) come from Debian; `make bench` installs
# them and starts its own servers on loopback. BENCH_ONLY=core,python,... runs some parts.
BENCH_ONLY ?= core,python,journal,baselines,http,cluster
bench: build bootstrap
	$(PY) bench/run.py --only $(BENCH_ONLY)

# Every benchmark at a tiny size, so that they keep working (part of `make test`).
bench-smoke: build bootstrap
	$(PY) bench/run.py --smoke

# The long versions of the randomized tests (docs/reliability.md): SOAK_KILLS SIGKILLs,
# SOAK_EXAMPLES Hypothesis runs, then the deterministic simulator for SOAK_MINUTES.
SOAK_KILLS    ?= 1000
SOAK_EXAMPLES ?= 5000
SOAK_MINUTES  ?= 10
soak: build bootstrap
	BOXOFFICE_CRASH_KILLS=$(SOAK_KILLS) $(PY) -m pytest -q tests/python/test_durability.py -k sigkill
	BOXOFFICE_HYPOTHESIS_EXAMPLES=$(SOAK_EXAMPLES) $(PY) -m pytest -q tests/python/test_model_equivalence.py
	$(PY) tests/python/dst.py --minutes $(SOAK_MINUTES) --steps 1000

# libFuzzer targets of the C++ core (fuzz/, docs/reliability.md), built with clang and ASan+UBSan:
# the regression inputs, then FUZZ_SECONDS per target (20 s in `make test`).
FUZZ_SECONDS ?= 600
fuzz: bootstrap
	fuzz/run.sh $(FUZZ_SECONDS)

fuzz-smoke: bootstrap
	FUZZ_WORK=build/fuzz/corpus-smoke FUZZ_FRESH=1 fuzz/run.sh 20

demo: build
	$(PY) -m boxoffice.demo

# The HTTP service with a demo concert; the store is var/boxoffice.db (BOXOFFICE_* to change).
HOST ?= 127.0.0.1
PORT ?= 8000
serve: build
	$(VENV)/bin/boxoffice serve --demo --host $(HOST) --port $(PORT)

# The same HTTP API from a whole cluster on this machine (docs/scale-out.md): 3 nats-servers,
# 2 engine replicas, 2 HTTP workers sharing $(PORT), the demo concert; `make cluster-down` stops it.
CLUSTER_DIR ?= var/cluster
cluster: build
	$(VENV)/bin/boxoffice cluster up --dir $(CLUSTER_DIR) --host $(HOST) --port $(PORT) --demo

cluster-down: bootstrap-serve
	$(VENV)/bin/boxoffice cluster down --dir $(CLUSTER_DIR)

# Regenerates the checked-in OpenAPI document (tests/api/test_openapi.py compares them).
openapi: build
	$(PY) -m boxoffice_api.openapi api/openapi.json

clean:
	rm -rf build $(VENV) *.egg-info
