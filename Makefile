# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 5000

.PHONY: install demo test lint bench bench-quick clean fuzz-api fuzz faults soak docs-tables docs-check wheel-check abuse screenshots bench-grpc grpc-generate fleet availability bench-monitoring bench-explain bench-servers

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The server alone, for `make demo`; tests and lint add their tools (real clients, a browser driver).
$(VENV)/.installed-serve: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,lint]'
	touch $@ $(VENV)/.installed-serve

install: $(VENV)/.installed

demo: $(VENV)/.installed-serve
	$(BIN)/flaskserve demo --dir demo-models
	@echo
	@echo "Serving the demo model on http://127.0.0.1:$(PORT) — try, in another terminal:"
	@echo "  curl -s localhost:$(PORT)/predict -H 'content-type: application/json' -d '{\"x\": 1, \"y\": 2}'"
	@echo "The flaskserve command is installed in $(VENV): run '. $(BIN)/activate' in a terminal to type"
	@echo "'flaskserve ...' there, or call it as $(BIN)/flaskserve."
	@echo
	$(BIN)/flaskserve serve demo-models --port $(PORT)

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests bench examples tools
	$(BIN)/ruff format --check src tests bench examples tools
	$(BIN)/mypy
	$(BIN)/lint-imports

# Needs wrk (apt-get install -y wrk). bench/setup_peers.sh makes each peer's own virtualenv (MLServer,
# LitServe, BentoML) under ~/.cache/flaskserve-bench/peers, skipping a peer whose install fails. About
# 12 minutes; writes docs/benchmarks.md, then the gRPC rows (flaskserve's gRPC against its REST path and
# MLServer's gRPC, about 2 minutes) into docs/performance.md. `make bench-quick` is the few-minute smoke form,
# docs untouched.
bench: install
	bash bench/setup_peers.sh
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/grpc_bench.py --update-doc docs/performance.md

bench-quick: install
	bash bench/setup_peers.sh
	$(BIN)/python bench/run.py --quick $(BENCH_ARGS)

# The WSGI server layer on its own: stock gthread, flaskserve's worker and granian on hello-world apps,
# then threads, workers, keep-alive and granian's backpressure swept (docs/performance.md, "Threads,
# keep-alive and backpressure"). Needs wrk; about 3 + 13 minutes; prints tables, changes no file.
bench-servers: install
	$(BIN)/python bench/wsgi_servers.py compare
	$(BIN)/python bench/wsgi_servers.py sweep --rounds 4

# What an explanation costs next to the prediction it explains (docs/explanations.md, "Cost").
bench-explain: install
	$(BIN)/python bench/explain.py --update-doc docs/explanations.md

clean:
	rm -rf $(VENV) demo-models .pytest_cache .mypy_cache .ruff_cache

# Fuzzes the API of a real two-worker server from its own /openapi.json (schemathesis), FUZZ_EXAMPLES
# cases per operation and mode; prints the figures docs/reliability.md quotes.
FUZZ_EXAMPLES ?= 1000
fuzz-api: install
	FLASKSERVE_API_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -p no:cacheprovider -q -s \
		tests/reliability/test_api_fuzz.py -k test_no_server_error_and_no_answer_outside_the_document

# Coverage-guided fuzzing of the decoders (atheris), FUZZ_RUNS executions per target, one target at a
# time; writes its table into docs/reliability.md. Crashing inputs land in tests/reliability/fuzz/crashes/.
FUZZ_RUNS ?= 500000
fuzz: install
	$(BIN)/python tests/reliability/fuzz/run.py --runs $(FUZZ_RUNS) --update-doc docs/reliability.md

# The fleet test in its long form (docs/scaling.md): three replica hosts, Redis and nginx in network
# namespaces (needs root), each load for FLEET_SECONDS; then throughput with 1, 2 and 3 replicas,
# written into docs/scaling.md.
FLEET_SECONDS ?= 20
fleet: install
	FLEET_SECONDS=$(FLEET_SECONDS) $(BIN)/python -m pytest -p no:cacheprovider -q -s -rxs tests/fleet
	$(BIN)/python tests/fleet/scaling.py --seconds 10 --rounds 3 --update-doc docs/scaling.md

# The fault tests in their long form (docs/reliability.md, "Faults"): a worker SIGKILLed every second
# and Redis stopped, restarted and flapping, each under load for FAULT_SECONDS; also a hanging model
# and a read-only or full run directory (mounts need root). Prints the figures the document quotes.
FAULT_SECONDS ?= 60
faults: install
	FAULT_SECONDS=$(FAULT_SECONDS) $(BIN)/python -m pytest -p no:cacheprovider -q -s -rxs \
		tests/reliability/test_worker_kills.py tests/reliability/test_redis_faults.py \
		tests/reliability/test_hanging_model.py tests/reliability/test_run_directory_faults.py

# The soak (docs/reliability.md, "Soak"): SOAK_MINUTES of mixed traffic after a 60 s warm-up against a
# two-worker server, gunicorn and then granian; writes the per-minute table and each worker's RSS and
# open files into the document. Fails when a 5xx, an invalid body not refused, or 5% growth appears.
SOAK_MINUTES ?= 10
soak: install
	$(BIN)/python tests/reliability/soak.py --minutes $(SOAK_MINUTES) --server gunicorn --server granian \
		--update-doc docs/reliability.md

# The README's error and settings tables, rewritten from the code (tests/docs/test_docs_tables.py
# fails, naming this target's command, when they are out of date).
docs-tables: install
	$(BIN)/python tools/docs_tables.py --write README.md

# The README's and the examples' marked shell blocks, run as a user types them in a fresh virtual
# environment: pip install from PyPI, servers, clients, outputs compared (a few minutes). `make test`
# runs the same blocks in this environment, without the install steps.
docs-check: install
	FLASKSERVE_DOCS_FRESH_VENV=1 $(BIN)/python -m pytest -p no:cacheprovider -q -rs \
		tests/docs/test_docs_commands.py

# Builds the wheel, installs it into a clean virtual environment (flaskserve --version, check), then
# installs it with every extra and imports each framework (a few minutes, mostly downloads).
wheel-check: install
	FLASKSERVE_WHEEL_CHECK=1 $(BIN)/python -m pytest -p no:cacheprovider -q -rs tests/test_wheel.py

# The abusive-client tests in their long form (docs/reliability.md, "Abusive clients"): 200 slow bodies, 40 slow
# readers, 500 idle connections, and each refused request sent 20 times, under gunicorn and granian; prints the
# table of ordinary requests answered and their p99 that the document quotes.
abuse: install
	ABUSE_LONG=1 $(BIN)/python -m pytest -p no:cacheprovider -q -s -rxs tests/reliability/test_abusive_clients.py

# The playground's screenshots (docs/images/playground-*.png), taken by its browser tests in Debian's Chromium.
screenshots: install
	mkdir -p docs/images
	FLASKSERVE_SCREENSHOTS=docs/images $(BIN)/python -m pytest -p no:cacheprovider -q tests/e2e/test_playground_page.py

# The gRPC modules, regenerated from src/flaskserve/rpc/proto/grpc_predict_v2.proto
# (tests/rpc/test_proto.py fails when they are out of date).
grpc-generate: install
	$(BIN)/python -m grpc_tools.protoc -Isrc --python_out=src --pyi_out=src --grpc_python_out=src \
		src/flaskserve/rpc/proto/grpc_predict_v2.proto

# gRPC against the REST path of the same server (tritonclient's clients), and MLServer's gRPC when
# bench/setup_peers.sh has made its virtualenv; writes its table into docs/performance.md.
bench-grpc: install
	$(BIN)/python bench/grpc_bench.py --update-doc docs/performance.md

# The availability harness in its long form (docs/operations.md, "Measured availability"): 10 rollouts, a corrupt
# file, a slow copy, a pin and unpin, a revoked key, 3 HUPs and a worker killed every second for 10 s, under
# load, gunicorn and then granian; writes its tables into the document. Then the drain on TERM (20 slow
# requests in flight) under both servers.
availability: install
	$(BIN)/python tests/reliability/availability.py --server gunicorn --server granian \
		--update-doc docs/operations.md
	AVAILABILITY_SERVERS="gunicorn granian" $(BIN)/python -m pytest -q tests/reliability/test_draining.py

# What model monitoring costs a prediction (drift counting, the inference log to a slow sink and to
# PostgreSQL), side by side with none. Writes its table into docs/monitoring.md.
bench-monitoring: install
	$(BIN)/python bench/monitoring.py --update-doc docs/monitoring.md
