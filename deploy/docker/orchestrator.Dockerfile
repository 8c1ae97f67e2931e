# syntax=docker/dockerfile:1.7
# Orchestrator service: validation, retrieval, prompt building and the streamed Debug answer.
#
#   docker build -f deploy/docker/orchestrator.Dockerfile -t raildebug/orchestrator:0.1.0 .
#
# It holds no model; prompt templates ship in the package and Kubernetes may mount a newer
# registry over them from a ConfigMap. The builder stage matches retriever.Dockerfile step for
# step so the two builds share their cached layers.

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
    RAILDEBUG_DATA_DIR=/var/lib/raildebug \
    RAILDEBUG_ORCHESTRATOR_HOST=0.0.0.0
USER 10001:10001
EXPOSE 50051
ENTRYPOINT ["raildebug", "serve", "orchestrator"]
