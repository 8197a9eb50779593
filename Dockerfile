# syntax=docker/dockerfile:1
# aeserve images. Build from the repository root:
#   docker build -t aeserve .                      # runtime (the default, last stage)
#   docker build -t aeserve-train --target train . # training pipeline with torch (CPU)
# The runtime image holds the service, its runtime dependencies and models/; no torch, no
# compilers, no tests. It runs as a non-root user and takes every setting from AESERVE_* variables.
#
# PYTHON_IMAGE is the base: the official slim image by default. Where no registry can be reached,
# `make image` (scripts/image.sh) builds one from Debian's packages (docker/local/build-base.sh)
# and passes --build-arg PYTHON_IMAGE=localhost/aeserve-local/python:3.11-bookworm.
# Behind a TLS-inspecting proxy, give pip the proxy's CA bundle as a build secret (it stays out of
# the image): --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt (scripts/image.sh does).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# --- build: install the runtime package into a venv that the runtime stage copies -------------
FROM base AS build
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
# Only service/ goes into the wheel: the runtime never needs training/ (which imports torch).
COPY service/ service/
# pip compiles the .pyc files here, so the read-only root filesystem at run time costs nothing.
# pip and setuptools leave afterwards: nothing installs packages in a running container.
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
 && /opt/venv/bin/pip install . \
 && /opt/venv/bin/pip uninstall --yes pip setuptools
# What the service never runs leaves the venv (the image's size goal is 400 MB with the zoo):
# the test suites wheels ship (numpy's: 16 MB), onnxruntime's offline tools (model conversion,
# quantization, transformer optimisers: 8 MB), and the debug sections of native extensions
# (uvloop, pysimdjson, PyYAML, ...: 22 MB). Libraries that auditwheel patched (vendored in
# *.libs/, or linked to them through an RPATH) stay as they are: strip breaks patchelf's
# layout ("ELF load command address/offset not page-aligned"). `strip` and `readelf` come from
# binutils, installed in this stage only: the runtime stage copies the venv, not the tools.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install --yes --no-install-recommends binutils \
 && site=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
 && find "$site" -depth -type d -name tests -exec rm -rf {} + \
 && rm -rf "$site/onnxruntime/tools" "$site/onnxruntime/quantization" \
      "$site/onnxruntime/transformers" \
 && find "$site" -type f -name '*.so*' ! -path '*.libs/*' | while read -r lib; do \
      readelf -d "$lib" | grep -q 'R\(UN\)\?PATH' || strip --strip-debug "$lib"; done \
 && /opt/venv/bin/python -c 'import numpy, onnxruntime, PIL.Image, uvloop, simdjson, yaml, grpc, service.http.app'

# --- train: the offline pipeline with torch, for `docker compose --profile train` ------------
FROM base AS train
# torch==2.13.0 must be the CPU build: PyPI's Linux wheel pulls several GB of CUDA libraries.
# The CPU index serves the same version without them; `.[train]` then finds the pin satisfied.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# Where that index cannot be reached but the CPU wheel lies on disk: a directory holding it,
# mounted into the build (`podman build -v DIR:/wheels:ro --build-arg TORCH_WHEELS=/wheels`;
# scripts/image.sh does so). pip then takes torch from there and its dependencies from PyPI.
ARG TORCH_WHEELS=
# Debian packages that hold datasets (shared/DESIGN.md section 4): fashion-mnist, emoji font.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends dataset-fashion-mnist fonts-symbola \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
 && python -m venv /opt/venv \
 && if [ -n "${TORCH_WHEELS}" ]; then source="--find-links ${TORCH_WHEELS}"; \
    else source="--index-url ${TORCH_INDEX_URL}"; fi \
 && /opt/venv/bin/pip install $source torch==2.13.0 \
 && /opt/venv/bin/python -c 'import torch; assert torch.version.cuda is None, torch.__version__'
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /srv/aeserve
COPY pyproject.toml README.md ./
COPY service/ service/
COPY training/ training/
COPY scripts/ scripts/
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
 && pip install '.[train]' \
 && PYTHON=python AESERVE_DATA_DIR=/srv/aeserve/data bash scripts/fetch-data.sh \
 && rm -rf /srv/aeserve/data/.cache
RUN groupadd --system --gid 10001 aeserve \
 && useradd --system --uid 10001 --gid aeserve --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin aeserve \
 && mkdir -p /models && chown aeserve:aeserve /models
# matplotlib (plots for the model cards) wants a writable config directory; the user has no home.
ENV MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
# Writes the zoo into /models, the volume the compose file shares with the service.
ENTRYPOINT ["python", "-m", "training"]
CMD ["build-zoo", "--out", "/models"]

# --- runtime (default target) -----------------------------------------------------------------
FROM base AS runtime
# /models is where compose mounts the models volume (read-only here); it belongs to the service
# user so that a new volume inherits that owner and the train image (same uid) can fill it.
RUN groupadd --system --gid 10001 aeserve \
 && useradd --system --uid 10001 --gid aeserve --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin aeserve \
 && mkdir /models && chown aeserve:aeserve /models
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/aeserve-entrypoint
COPY --chmod=0755 docker/healthcheck.py /usr/local/bin/aeserve-healthcheck
# The model repository is owned by root and only readable by the service.
COPY models/ /srv/aeserve/models/
ENV PATH=/opt/venv/bin:$PATH \
    AESERVE_MODEL_DIR=/srv/aeserve/models \
    AESERVE_HOST=0.0.0.0 \
    AESERVE_PORT=8000 \
    AESERVE_WORKERS=1
WORKDIR /srv/aeserve
USER 10001:10001
# 8000: HTTP (REST, OIP v2 REST, web app, /metrics); 8001: the OIP v2 gRPC service
# (AESERVE_GRPC_PORT; 0 turns it off).
EXPOSE 8000 8001
# Ready means models loaded: /readyz answers 503 until then, and the orchestrator waits on it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "/usr/local/bin/aeserve-healthcheck"]
ENTRYPOINT ["/usr/local/bin/aeserve-entrypoint"]
