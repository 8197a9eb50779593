# aeserve — the commands a fresh machine needs. Every target creates .venv when missing and
# installs what it needs: `serve` the runtime only, the others runtime + train + dev extras.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
HOST   ?= 0.0.0.0
# The model a request gets when it names none (`make serve` serves the shipped zoo); the
# environment's AESERVE_DEFAULT_MODEL wins.
AESERVE_DEFAULT_MODEL ?= mnist

.PHONY: serve test lint models data sysdeps bench bench-web soak clean web-vendor reference screenshots image image-train test-deploy

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamp files record what was installed, so reruns are quick; pyproject changes reinstall.
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.all: pyproject.toml clients/python/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[train,dev]' -e clients/python
	touch $@ $(VENV)/.runtime

## serve: serve the shipped model zoo on port $(PORT)
serve: $(VENV)/.runtime
	AESERVE_DEFAULT_MODEL=$(AESERVE_DEFAULT_MODEL) $(BIN)/python -m service --host $(HOST) --port $(PORT)

## sysdeps: Debian packages the tests use (installed only when root and missing)
sysdeps:
	@bash scripts/sysdeps.sh

## data: fetch the offline datasets into data/ (see shared design, section 4)
data: $(VENV)/.all
	@bash scripts/fetch-data.sh

## lint: ruff + mypy (service/, aeserve/ and the client strict) + the import-layer contracts of service/
lint: $(VENV)/.all
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy service aeserve
	$(BIN)/mypy --strict clients/python/src
	$(BIN)/lint-imports

## test: lint + the whole pytest suite
test: sysdeps $(VENV)/.all data lint
	$(BIN)/pytest

## bench: aeserve vs a plain FastAPI baseline and raw onnxruntime -> docs/benchmarks.md (QUICK=1: seconds)
bench: sysdeps $(VENV)/.all
	$(BIN)/python -m bench $(if $(QUICK),--quick)

## bench-web: how fast each page of the web app is interactive, in Debian's chromium (a benchmark)
bench-web: sysdeps $(VENV)/.all
	$(BIN)/python -m bench.web $(if $(RUNS),--runs $(RUNS))

## soak: 10 minutes of mixed load at ~80% of measured capacity -> docs/soak.md (a benchmark)
soak: sysdeps $(VENV)/.all
	$(BIN)/python -m bench.soak $(if $(MINUTES),--minutes $(MINUTES))

## image: the runtime image aeserve:latest (docker when a daemon answers, else podman; as root
## it installs and sets up podman itself, and builds the base image from Debian's packages)
image:
	@bash scripts/image.sh runtime

## image-train: the training image aeserve-train:latest (same engine and base as `image`)
image-train:
	@bash scripts/image.sh train

## test-deploy: the deployment for real (tests/deploy/stack): base images from Debian's packages,
## the runtime image, the compose stack with podman under load and faults. As root it installs
## and sets up podman itself; it fails, never skips, where containers cannot run. Here (2 cores,
## busy): 12 min from a cold container store (base images 5, runtime image 3, tests 4), 6 when
## the base images exist and the runtime image rebuilds
test-deploy: sysdeps $(VENV)/.all
	@bash scripts/podman-setup.sh
	@bash docker/local/build-base.sh all
	@AESERVE_ENGINE=podman bash scripts/image.sh runtime
	AESERVE_TEST_STACK=1 $(BIN)/pytest tests/deploy/stack -p no:cacheprovider
	@cat build/test-deploy/results.json

## models: rebuild the shipped zoo in models/ from training/recipes/ (JOBS=2: two models at a
## time, one process and one torch thread each; the files do not depend on JOBS). Prints each
## model's build time; exits 1 when a model misses a recipe target (named on stderr)
JOBS ?= 1
models: $(VENV)/.all data
	$(BIN)/python -m training build-zoo --out models --jobs $(JOBS)

## web-vendor: re-vendor Swagger UI and ReDoc (pinned, from the npm registry) into service/web/vendor/
web-vendor:
	bash scripts/vendor-web.sh

## screenshots: the web app's screenshots in docs/web/ (the README shows them), from the shipped zoo
screenshots: sysdeps $(VENV)/.all
	$(BIN)/python -m tests.web.screenshots

## reference: write reference.npz (the latent map's codes) into the shipped models, no retraining
reference: $(VENV)/.all data
	$(BIN)/python -m training reference --models models

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .soak
