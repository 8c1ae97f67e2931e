#!/usr/bin/env bash
# Builds llama-cpp-python for CPUs without relying on -march=native.
#
# Why: a native build enables llama.cpp's AMX kernels on CPUs that advertise AMX, and they
# segfault in VMs that do not grant AMX tile state (seen on our dev/CI machines). The wheel
# is built once per flag set into a wheelhouse and reused; pip's own wheel cache is bypassed
# because it ignores CMAKE_ARGS. GPU nodes build with LLAMA_CMAKE_ARGS="-DGGML_CUDA=on".
set -euo pipefail
version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
cmake_args="${LLAMA_CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}"
wheelhouse="${RAILDEBUG_WHEELHOUSE:-$HOME/.cache/raildebug/wheels}"
flags_id=$(printf '%s' "$version $cmake_args" | sha256sum | cut -c1-12)
target="$wheelhouse/$flags_id"
python="${PYTHON:-.venv/bin/python}"
if ! ls "$target"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $version ($cmake_args); takes ~6 min on 2 cores" >&2
  mkdir -p "$target"
  CMAKE_ARGS="$cmake_args" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$python" -m pip wheel --no-cache-dir --no-deps "llama-cpp-python==$version" -w "$target" >&2
fi
ls "$target"/llama_cpp_python-*.whl
