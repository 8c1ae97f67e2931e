# syntax=docker/dockerfile:1.7
# Training image for `raildebug train` under torchrun: FSDP over NCCL on GPU nodes, gloo on CPU.
#
#   docker build -f deploy/docker/training.Dockerfile -t raildebug/training:0.1.0 .
#
# torch comes from PyPI's default index, whose Linux wheels bundle CUDA and NCCL, so the slim
# Python base needs no CUDA toolkit. llama-cpp-python (GGUF quantization and the parity gate)
# is built portably on CPU. The packaged Gemma GGUF is the default base model, so it is baked in.

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
# hadolint ignore=DL3013
RUN wheel="$(PYTHON=python RAILDEBUG_WHEELHOUSE=/tmp/wheels bash scripts/build-llama-wheel.sh)" \
    && pip install --no-deps "${wheel}" \
    && rm -rf /tmp/wheels
RUN pip install "torch==2.13.0"
COPY pyproject.toml README.md ./
COPY apps apps
COPY raildebug raildebug
COPY services services
COPY training training
# The project pins its own dependencies in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install ".[train]"
COPY scripts/precache_models.py scripts/
RUN python scripts/precache_models.py --gguf-dir /opt/raildebug/models \
        --manifest /opt/raildebug/models/manifest.json

FROM ${PYTHON_IMAGE}
RUN groupadd --gid 10001 raildebug \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin raildebug
COPY --from=builder /opt/raildebug /opt/raildebug
# Datasets and the sample corpus at the paths training/k8s_job.py maps a config's files to.
COPY training /opt/raildebug/src/training
COPY data /opt/raildebug/src/data
# Outputs go to /checkpoints (a PVC in the Job); caches to /tmp (an emptyDir).
ENV PATH=/opt/raildebug/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/cache \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    RAILDEBUG_DATA_DIR=/checkpoints \
    RAILDEBUG_INFERENCE_MODEL_CACHE_DIR=/opt/raildebug/models
WORKDIR /opt/raildebug/src
USER 10001:10001
# The Job (training/k8s_job.py) runs torchrun with the rendezvous flags; this is for humans.
CMD ["raildebug", "--help"]
