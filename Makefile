# hz-sidecar: entry points. `make run` and `make test` work on a fresh checkout.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CONFIG ?= config/sidecar.yaml
PROTO  := protos/hzsidecar/v1/mapstore.proto
GEN    := hzsidecar/v1/mapstore_pb2.py

# The Java side: the member's MapStore shim (one shaded jar) and the Hazelcast jar the
# end-to-end fixtures start members with, then the end-to-end suite's Java side (the
# reference framework's key class and a Java client driving its data shapes). Real files
# built from their sources: a second `make test` does not run Maven again.
SHIM_JAR          := shim/target/hz-sidecar-shim.jar
HAZELCAST_JAR     := shim/target/lib/hazelcast-5.7.0.jar
FRAMEWORK_JAR     := tests/java/framework-shapes/target/framework-shapes.jar
JARS              := $(SHIM_JAR) $(HAZELCAST_JAR) $(FRAMEWORK_JAR)
SHIM_SOURCES      := shim/pom.xml $(shell find shim/src protos -type f)
FRAMEWORK_SOURCES := tests/java/framework-shapes/pom.xml \
                     $(shell find tests/java/framework-shapes/src -type f)
JDK_HINT          := install a JDK 17 and Maven (Debian: apt-get install openjdk-17-jdk-headless maven; .ci/run does)

# pytest: a missing prerequisite (jar, JDK, openssl, PostgreSQL) fails instead of skipping.
STRICT := --strict-prerequisites

.PHONY: install proto proto-gen run test test-fast test-e2e test-postgres tools unit lint shim \
        clean docs demo bench

install: $(VENV)/.installed $(GEN)

# The editable install is made twice: once to get the code generator, once more
# after generation so that the generated `hzsidecar` package is importable too.
# The second install also builds the optional compiled codec (setup.py, Cython) where a C
# compiler and the Python headers exist; the last line says which codec the sidecar runs.
$(VENV)/.installed: pyproject.toml setup.py sidecar/codec/_flat.pyx
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(MAKE) --no-print-directory proto-gen
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -c 'from sidecar.codec import accel; print("hz-sidecar", accel.status())'
	$(PY) -c 'from sidecar.providers import postgres; print("hz-sidecar", postgres.arrays_status())'
	touch $@

# Generated protobuf/gRPC code (with mypy stubs): produced by the build, never edited.
proto: $(GEN)
$(GEN): $(PROTO) $(VENV)/.installed
	$(MAKE) --no-print-directory proto-gen

proto-gen:
	mkdir -p hzsidecar/v1
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m grpc_tools.protoc -Iprotos \
	    --python_out=. --grpc_python_out=. --mypy_out=. --mypy_grpc_out=. $(PROTO)
	touch hzsidecar/__init__.py hzsidecar/v1/__init__.py hzsidecar/py.typed

run: install
	mkdir -p data
	$(VENV)/bin/hz-sidecar run --config $(CONFIG)

lint: install
	$(VENV)/bin/ruff check sidecar tests examples
	$(VENV)/bin/ruff format --check sidecar tests examples
	$(VENV)/bin/mypy sidecar

# Every test: lint, the Java side built (and its JUnit tests), then the whole pytest suite,
# in which no test may skip for want of a prerequisite.
test: tools install lint $(JARS)
	$(VENV)/bin/pytest -q $(STRICT)

# The inner loop: unit and system tests (the real sidecar process on SQLite), no
# PostgreSQL, no Hazelcast member; a test missing a prerequisite (openssl) says so and skips.
test-fast: install
	$(VENV)/bin/pytest -q -m "not e2e and not postgres" tests/unit tests/system

# The tests that start Hazelcast members (end-to-end and faults), with the jars they need.
test-e2e: install $(JARS)
	$(VENV)/bin/pytest -q $(STRICT) -m e2e

# The tests against a real PostgreSQL server that start no member.
test-postgres: install
	$(VENV)/bin/pytest -q $(STRICT) -m "postgres and not e2e"

unit: install
	$(VENV)/bin/pytest -q tests/unit

# What `make test` needs from the machine besides Python: stop at once, naming all of it.
tools:
	@missing=; \
	for tool in java mvn openssl; do \
	    command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; \
	done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
	    || missing="$$missing initdb(postgresql)"; \
	command -v kubectl >/dev/null 2>&1 || command -v kustomize >/dev/null 2>&1 \
	    || missing="$$missing kubectl|kustomize"; \
	if [ -n "$$missing" ]; then \
	    echo "make: the tests need:$$missing. Debian: apt-get install openjdk-17-jdk-headless" \
	        "maven openssl postgresql kubernetes-client (.ci/run installs them)" >&2; \
	    exit 1; \
	fi

shim: $(JARS)

# One Maven build makes both jars; touched, because Maven leaves an up-to-date jar as it is.
$(SHIM_JAR) $(HAZELCAST_JAR) &: $(SHIM_SOURCES)
	@command -v mvn >/dev/null 2>&1 || { echo "make: mvn not found: $(JDK_HINT)" >&2; exit 1; }
	@command -v java >/dev/null 2>&1 || { echo "make: java not found: $(JDK_HINT)" >&2; exit 1; }
	mvn -B -q -f shim/pom.xml package
	touch $(SHIM_JAR) $(HAZELCAST_JAR)

$(FRAMEWORK_JAR): $(FRAMEWORK_SOURCES)
	@command -v mvn >/dev/null 2>&1 || { echo "make: mvn not found: $(JDK_HINT)" >&2; exit 1; }
	@command -v java >/dev/null 2>&1 || { echo "make: java not found: $(JDK_HINT)" >&2; exit 1; }
	mvn -B -q -f tests/java/framework-shapes/pom.xml package
	touch $@

clean:
	rm -rf $(VENV) hzsidecar build .pytest_cache .mypy_cache .ruff_cache

# Regenerate the README's configuration reference from the configuration model.
docs: install
	$(PY) -m sidecar.config_reference README.md

# A member with the shim, the sidecar on SQLite, a client putting Compact records; Ctrl-C stops.
demo: install shim
	$(PY) examples/demo.py

# Figures and ratios against the database's ceiling and the alternatives, measured in one run
# (own PostgreSQL, sidecars, member); writes bench/results/latest.md and latest.svg (a chart). BENCH_SCALE=0.05 for a quick run.
bench: install shim
	$(PY) bench/run.py
