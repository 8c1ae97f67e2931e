"""Where the Kubernetes manifests live and the version they are validated against."""

from __future__ import annotations

from tests.support.paths import REPO_ROOT

K8S_DIR = REPO_ROOT / "deploy" / "k8s"
OVERLAYS = ("cpu-dev", "gpu-prod")
KUBERNETES_VERSION = "1.34.0"  # matches the kubectl that renders the overlays
