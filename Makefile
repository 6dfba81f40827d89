# hz-sidecar: entry points. `make run` and `make test` work on a fresh checkout.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CONFIG ?= config/sidecar.yaml
PROTO  := protos/hzsidecar/v1/mapstore.proto
GEN    := hzsidecar/v1/mapstore_pb2.py

.PHONY: install proto proto-gen run test unit lint shim clean docs demo bench

install: $(VENV)/.installed $(GEN)

# The editable install is made twice: once to get the code generator, once more
# after generation so that the generated `hzsidecar` package is importable too.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(MAKE) --no-print-directory proto-gen
	$(PY) -m pip install --quiet --no-deps -e .
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

test: install lint
	$(VENV)/bin/pytest -q

unit: install
	$(VENV)/bin/pytest -q tests/unit

# The member-side MapStore shim: one shaded jar, shim/target/hz-sidecar-shim.jar, plus the Hazelcast
# jar the end-to-end fixtures start a member with, shim/target/lib/hazelcast-5.7.0.jar.
# Then the end-to-end suite's Java side, tests/java/framework-shapes/target/framework-shapes.jar:
# the reference framework's key class and a Java client that puts and reads its data shapes.
shim:
	mvn -B -q -f shim/pom.xml package
	mvn -B -q -f tests/java/framework-shapes/pom.xml package

clean:
	rm -rf $(VENV) hzsidecar build .pytest_cache .mypy_cache .ruff_cache

# Regenerate the README's configuration reference from the configuration model.
docs: install
	$(PY) -m sidecar.config_reference README.md

# A member with the shim, the sidecar on SQLite, a client putting Compact records; Ctrl-C stops.
demo: install shim
	$(PY) examples/demo.py

# Figures and ratios against the database's ceiling and the alternatives, measured in one run
# (own PostgreSQL, sidecars, member); writes bench/results/latest.md. BENCH_SCALE=0.05 for a quick run.
bench: install shim
	$(PY) bench/run.py
