#!/usr/bin/env bash
# Builds the server binaries the tests start (pinned versions) into a cache outside the
# repository, with `go install`; prints each binary's path. Idempotent: a present binary is kept.
#
#   scripts/build-servers.sh            # all of them
#   scripts/build-servers.sh weaviate   # only the named ones (weaviate, jaeger)
#
# Without Go it says so and exits 0 (setup goes on; the tests that need a binary fail and name
# this script). Why source builds: CI reaches only package registries, and the Go module proxy
# serves these pinned, checksummed (go.sum) sources.
set -euo pipefail
cache_dir="${RAILDEBUG_BIN_CACHE:-$HOME/.cache/raildebug/bin}"

# Pinned versions. Jaeger v2 (cmd/jaeger) is built from the module's last v1.x tag: its v2.x tags
# do not match its module path and the module proxy serves tags only. That tag's go.mod has one
# replace directive, which `go install pkg@version` refuses, so every server is built inside a
# throwaway main module that requires the pinned version and repeats its replace directives.
WEAVIATE_VERSION="${WEAVIATE_VERSION:-v1.38.11}"
JAEGER_VERSION="${JAEGER_VERSION:-v1.76.0}"  # Jaeger v2.13.0's code; all-in-one without config

# name -> module, version, package, binary, cache folder, replace directives (comma-separated)
spec() {
  case "$1" in
    weaviate)
      echo "github.com/weaviate/weaviate $WEAVIATE_VERSION cmd/weaviate-server weaviate-server weaviate-$WEAVIATE_VERSION -"
      ;;
    jaeger)
      echo "github.com/jaegertracing/jaeger $JAEGER_VERSION cmd/jaeger jaeger jaeger-$JAEGER_VERSION github.com/Shopify/sarama=github.com/Shopify/sarama@v1.33.0"
      ;;
    *)
      echo "unknown server '$1' (known: weaviate, jaeger)" >&2
      return 1
      ;;
  esac
}

build() {
  local module version package binary folder replaces target work
  spec "$1" >/dev/null || return 1
  read -r module version package binary folder replaces < <(spec "$1")
  target="$cache_dir/$folder/$binary"
  if [ -x "$target" ]; then
    echo "$target"
    return 0
  fi
  if ! command -v go >/dev/null; then
    echo "Go is not installed: not building $1 ($target); install Go >= 1.24 and rerun $0" >&2
    return 0
  fi
  work=$(mktemp -d)
  echo "building $1 ($module/$package@$version) with $(go version); takes minutes on few cores" >&2
  mkdir -p "$cache_dir/$folder"
  if ! (
    cd "$work" &&
      go mod init raildebug.local/build-"$1" >/dev/null 2>&1 &&
      go mod edit -require="$module@$version" &&
      if [ "$replaces" != "-" ]; then
        for replace in ${replaces//,/ }; do go mod edit -replace="$replace"; done
      fi &&
      GOFLAGS="${GOFLAGS:--buildvcs=false} -mod=mod" go build -trimpath -o "$target.partial" "$module/$package"
  ) >&2; then
    rm -rf "$work" "$target.partial"
    echo "building $1 ($module/$package@$version) failed" >&2
    return 1
  fi
  # Built next to the target, then renamed: a run killed midway leaves no half binary.
  mv "$target.partial" "$target"
  rm -rf "$work"
  echo "$target"
}

if [ "$#" -eq 0 ]; then
  set -- weaviate jaeger
fi
for name in "$@"; do
  build "$name"
done
