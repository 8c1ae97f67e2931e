#!/usr/bin/env bash
# The main job end to end: start the services, ingest the sample corpus, ask, stream, stop.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAILDEBUG_DATA_DIR="${RAILDEBUG_DATA_DIR:-$PWD/var/demo}"
export RAILDEBUG_LOG_FORMAT=console
question="${RAILDEBUG_DEMO_QUESTION:-E73-B is raised when point P12 fails to lock after a throw. Why, and how do I fix it?}"
raildebug=.venv/bin/raildebug

"$raildebug" up &
up_pid=$!
trap 'kill -TERM $up_pid 2>/dev/null; wait $up_pid 2>/dev/null || true' EXIT
"$raildebug" health --address 127.0.0.1:"${RAILDEBUG_ORCHESTRATOR_PORT:-50051}" --wait 300
"$raildebug" health --address 127.0.0.1:"${RAILDEBUG_RETRIEVER_PORT:-50052}" --wait 300
"$raildebug" health --address 127.0.0.1:"${RAILDEBUG_INFERENCE_PORT:-50053}" --wait 300
"$raildebug" ingest data/sample-corpus --exclude README.md --exclude QUESTIONS.md
echo
echo "Q: $question"
echo
"$raildebug" ask "$question"
