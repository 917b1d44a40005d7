# metallb-py developer entry points. `make help` lists them.
# Every target sets up what it needs: a fresh machine needs only `make demo` or `make test`.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deps-stamp
# The extension is rebuilt only when a Rust source, a manifest or pyproject.toml is newer than this stamp.
EXT_STAMP := $(VENV)/.ext-stamp
EXT_SOURCES := Cargo.toml Cargo.lock pyproject.toml \
	$(shell find rust -path '*/target' -prune -o \( -name '*.rs' -o -name Cargo.toml \) -print)
PYTEST_ARGS ?=
FLOOR_VENV := .venv-floor
FLOOR_STAMP := $(FLOOR_VENV)/.deps-stamp
# What the dependencies' floor can break: the API client, on the wire and against a real API server.
FLOOR_TESTS := tests/unit/test_k8s_client.py tests/unit/test_k8s_client_floor.py \
	tests/integration/test_k8s_client_apiserver.py tests/integration/test_controlplane.py

.DEFAULT_GOAL := help
.PHONY: help dev ext k8s test test-floor test-rust test-python lint bench wheel plots bench-l2 bench-failover bench-scale soak-l2 bench-bfd soak-bfd fuzz hostile toxiproxy faults bench-faults demo \
	demo-bgp plan clean clean-go-caches helm image

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@echo ">> creating $(VENV) and installing Python dependencies (first run takes a minute)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --editable '.[dev]'
	touch $(STAMP)

dev: $(EXT_STAMP) ## Set up the virtualenv and build the Rust extension in place (then only after changes)

# In place (the editable install already points at python/), so pip has nothing to do; maturin's output goes
# to a log that is shown only when the build fails.
$(EXT_STAMP): $(STAMP) $(EXT_SOURCES)
	@echo ">> building the Rust extension (metallb_py._core; output in $(VENV)/ext-build.log)"
	@$(VENV)/bin/maturin develop --release --skip-install >$(VENV)/ext-build.log 2>&1 \
		|| { cat $(VENV)/ext-build.log; exit 1; }
	@touch $@

ext: $(STAMP) ## Rebuild the Rust extension now, whatever the stamp says
	@rm -f $(EXT_STAMP)
	@$(MAKE) --no-print-directory $(EXT_STAMP)

k8s: ## Build (once, then cached) the kube-apiserver, etcd and kubectl the integration tests run
	bash tools/k8s/build.sh

toxiproxy: ## Build (once, then cached) the Toxiproxy server the fault suite puts before the API server
	bash tools/toxiproxy/build.sh

test: dev k8s toxiproxy helm test-rust test-python lint ## Set up, then run every test and lint (what CI runs)

test-floor: dev k8s $(FLOOR_STAMP) ## The API client's tests on the lowest dependency versions pyproject allows
	METALLB_PY_FLOOR=1 $(FLOOR_VENV)/bin/python -m pytest $(FLOOR_TESTS)

# The runtime and test dependencies pyproject.toml declares, under ci/floor-constraints.txt; the package itself
# is this checkout's python/ (with the extension `make ext` built there) on the path, not a second Rust build.
$(FLOOR_STAMP): pyproject.toml ci/floor-constraints.txt
	@echo ">> creating $(FLOOR_VENV) with the lowest dependency versions pyproject.toml allows"
	rm -rf $(FLOOR_VENV)
	$(PYTHON) -m venv $(FLOOR_VENV)
	echo '*' > $(FLOOR_VENV)/.gitignore
	$(FLOOR_VENV)/bin/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
		print("\n".join(p["dependencies"] + p["optional-dependencies"]["test"]))' > $(FLOOR_VENV)/requirements.txt
	$(FLOOR_VENV)/bin/python -m pip install --quiet --constraint ci/floor-constraints.txt \
		--requirement $(FLOOR_VENV)/requirements.txt
	echo "$(CURDIR)/python" > "$$($(FLOOR_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/metallb_py.pth"
	touch $(FLOOR_STAMP)

test-rust:
	cargo test --workspace --locked

test-python: dev
	$(PY) -m pytest $(PYTEST_ARGS)

lint: dev ## cargo fmt/clippy, ruff, mypy --strict, stubtest, import contracts
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	$(VENV)/bin/ruff check python tests benches
	$(VENV)/bin/ruff format --check python tests benches
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest metallb_py._core
	$(VENV)/bin/lint-imports

bench: dev k8s toxiproxy ## Run the benchmarks and print figures with ratios against their baselines
	$(PY) -m pytest benches -p no:cacheprovider --benchmark-columns=median,ops,rounds

helm: dev ## Build (once, then cached) Helm 4 from the Go module proxy for the chart tests
	$(PY) -c 'from metallb_py.testing.helm import ensure_helm_binary; print(ensure_helm_binary())'

image: ## The OCI image without a Docker engine (root; apt-get install mmdebstrap buildah): target/image/
	bash deploy/image/build

SCALE_NODES ?= 100
SCALE_SERVICES ?= 1000
bench-scale: dev k8s ## SCALE_NODES speakers (100) and SCALE_SERVICES Services (1,000) in one lab (root): time to announce, API requests, gossip, failover
	METALLB_PY_SCALE_NODES=$(SCALE_NODES) METALLB_PY_SCALE_SERVICES=$(SCALE_SERVICES) METALLB_PY_SCALE_KILLS=5 \
	METALLB_PY_SCALE_BATCH=$${METALLB_PY_SCALE_BATCH:-5} \
	METALLB_PY_SCALE_SPEAKER_ARGS="$${METALLB_PY_SCALE_SPEAKER_ARGS:---heartbeat-interval 0.5 --heartbeat-timeout 3 --gossip-probe-interval 1}" \
	$(PY) -m pytest benches/test_bench_scale.py -p no:cacheprovider -s

wheel: dev ## The release wheel and sdist (target/dist), installed in a fresh virtualenv and tested without Rust
	bash .ci/wheel-test

plots: ## Redraw the bench plots and REPORT.md from the last runs (bench-results/, or METALLB_PY_BENCH_OUT)
	$(PY) benches/plot_report.py

bench-l2: dev ## The layer 2 wire figures alone (root): latency and flood, ours vs the kernel
	$(PY) benches/l2_bench.py

# The long run of benches/test_bench_bgp.py (CI runs it short within `make bench`, 2,000 Services in the full
# stack); override any of these, e.g. `make bench-bgp BGP_FULL_STACK=0` to leave the full stack out (creating
# its 10,000 Services through the API server takes about 3 minutes on 2 cores, before the figure starts).
BGP_KILLS ?= 20
BGP_ROUNDS ?= 20
BGP_EDIT_CYCLES ?= 10
BGP_FULL_STACK ?= 10000

bench-bgp: dev k8s ## BGP figures at length (root): 20 kills, 20 load rounds, 80 edits, 10,000 Services configured
	METALLB_PY_BENCH_BGP_KILLS=$(BGP_KILLS) METALLB_PY_BENCH_BGP_ROUNDS=$(BGP_ROUNDS) \
	METALLB_PY_BENCH_BGP_EDIT_CYCLES=$(BGP_EDIT_CYCLES) METALLB_PY_BENCH_BGP_FULL_STACK=$(BGP_FULL_STACK) \
		$(PY) -m pytest benches/test_bench_bgp.py -p no:cacheprovider

# benches/test_bench_failover.py alone, as CI runs it within `make bench` (20 deaths of each kind idle and
# loaded, beside keepalived; a 120 s loaded soak); `make soak-l2` is the issue's five-minute soak alone.
L2_SOAK_SECONDS ?= 300

bench-failover: dev k8s ## Layer 2 failover (root): our speakers vs keepalived VRRPv3 vs the floor, idle and loaded
	$(PY) -m pytest benches/test_bench_failover.py -p no:cacheprovider -s

soak-l2: dev k8s ## Layer 2 with both cores busy for 5 minutes, nobody dying (root): spurious moves (goal 0)
	METALLB_PY_FAILOVER_SOAK=$(L2_SOAK_SECONDS) $(PY) -m pytest benches/test_bench_failover.py -p no:cacheprovider \
		-s -k spurious

# benches/test_bench_bfd.py alone, as CI runs it within `make bench` (20 cuts per case, a 45 s loaded soak, 10
# graceful restarts; METALLB_PY_BENCH_BFD_* override them, see the file); `make soak-bfd` is its soak at length.
BFD_SOAK_SECONDS ?= 300

bench-bfd: dev ## BFD figures (root): cable cuts with BFD 50 ms x 3 and with hold time 3 s, soak, restarts
	$(PY) -m pytest benches/test_bench_bfd.py -p no:cacheprovider

soak-bfd: dev ## BFD 50 ms x 3 with both cores busy for 5 minutes (root): spurious session downs
	METALLB_PY_BENCH_BFD_SOAK=$(BFD_SOAK_SECONDS) $(PY) -m pytest benches/test_bench_bfd.py -p no:cacheprovider \
		-k soak

# benches/test_bench_faults.py at full size: 1,000 Services assigned through 500 ms of API latency (about 17
# minutes here: two writes per Service, one after the other); `make bench` (and CI) runs it with 200.
bench-faults: dev k8s toxiproxy ## 1,000 Services assigned by a controller behind 500 ms of API latency, vs none
	FAULTS_BENCH_SERVICES=1000 $(PY) -m pytest benches/test_bench_faults.py -p no:cacheprovider -s

# The fault suite (tests/faults) at length; CI runs it within `make test` with every fault once.
FAULT_RUNS ?= 10
FAULT_SERVICES ?= 20

faults: dev k8s toxiproxy ## The fault suite in full (root): every fault FAULT_RUNS times; figures in faults-report.json
	FAULT_RUNS=$(FAULT_RUNS) FAULT_SERVICES=$(FAULT_SERVICES) FAULTS_REPORT=$(CURDIR)/faults-report.json \
		$(PY) -m pytest tests/faults -p no:cacheprovider

# tests/integration/test_controller_hostile.py and tests/property/test_service_hostile.py at length (CI runs them
# within `make test` with 2,000 Services and hypothesis' default example count).
HOSTILE_SERVICES ?= 10000
HOSTILE_EXAMPLES ?= 5000

hostile: dev k8s ## Hostile Services at length: 10,000 through the API server, 5,000 property examples
	METALLB_HOSTILE_SERVICES=$(HOSTILE_SERVICES) METALLB_FUZZ_EXAMPLES=$(HOSTILE_EXAMPLES) \
		$(PY) -m pytest -p no:cacheprovider --timeout=0 -s tests/integration/test_controller_hostile.py \
		tests/property/test_service_hostile.py

fuzz: ## Run each packet fuzz target briefly
	bash scripts/fuzz.sh

demo: dev k8s ## The main job (root): the seed end to end on this machine, failover included
	$(VENV)/bin/metallb-py demo

demo-bgp: dev k8s ## The seed in BGP mode (root): behind an FRR router, ECMP over the nodes, BFD, a node's cable cut
	$(VENV)/bin/metallb-py demo --mode bgp

plan: dev ## Offline, no root: plan the seed's Services against the seed's ConfigMap
	$(VENV)/bin/metallb-py config validate examples/seed/metallb-l2config.yaml
	@# The fourth Service is meant to stay pending, which makes plan exit 1; anything worse fails the target.
	$(VENV)/bin/metallb-py ipam plan --config examples/seed/metallb-l2config.yaml \
		--services examples/seed/services.yaml; test $$? -le 1

clean: ## Remove build products and the virtualenv (not Go's caches: see clean-go-caches)
	rm -rf $(VENV) $(FLOOR_VENV) target python/metallb_py/*.so
	@echo ">> kept: the control plane and Toxiproxy binaries in ~/.cache/metallb-py, and Go's module and build"
	@echo "   caches the one-time builds filled (about 5 GB, ~/go/pkg/mod and ~/.cache/go-build);"
	@echo "   'make clean-go-caches' empties Go's caches (for every Go project of this user)"

clean-go-caches: ## Empty Go's module and build caches (~5 GB after the k8s build; shared by all Go projects)
	@command -v go >/dev/null || { echo "go is not on PATH: remove ~/go/pkg/mod and ~/.cache/go-build by hand" >&2; exit 1; }
	@echo ">> emptying $$(go env GOMODCACHE) and $$(go env GOCACHE)"
	go clean -modcache -cache
