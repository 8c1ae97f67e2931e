"""The Dockerfiles, checked without a Docker engine: hadolint, and the structure the Kubernetes
manifests rely on (non-root user, no HEALTHCHECK, pinned bases, paths the pods mount)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT

DOCKER_DIR = REPO_ROOT / "deploy" / "docker"
HADOLINT = Path(sys.executable).parent / "hadolint"
IMAGES = ("retriever", "inference", "orchestrator", "training")


def dockerfile(image: str) -> Path:
    return DOCKER_DIR / f"{image}.Dockerfile"


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HADOLINT), "--config", str(DOCKER_DIR / "hadolint.yaml"), "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


@pytest.mark.service  # runs hadolint
@pytest.mark.parametrize("image", IMAGES)
def test_hadolint_is_clean(image: str) -> None:
    result = hadolint(dockerfile(image))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.service  # runs hadolint
def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install requests\n", encoding="utf-8")
    result = hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # the "latest" tag


@pytest.mark.parametrize("image", IMAGES)
def test_multi_stage_non_root_and_no_healthcheck(image: str) -> None:
    steps = instructions(dockerfile(image))
    stages = [args for keyword, args in steps if keyword == "FROM"]
    assert len(stages) >= 2, "build tools must stay in a builder stage"
    assert all(keyword != "HEALTHCHECK" for keyword, _ in steps), "Kubernetes probes do that"
    final = steps[max(i for i, (k, _) in enumerate(steps) if k == "FROM") :]
    users = [args for keyword, args in final if keyword == "USER"]
    assert users == ["10001:10001"], "the final stage runs as the uid the pods expect"
    assert not any(k == "RUN" and "build-essential" in a for k, a in final), "no compilers"
    default_base = next(a for k, a in steps if k == "ARG" and a.startswith("PYTHON_IMAGE="))
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm", default_base)


@pytest.mark.parametrize("image", IMAGES)
def test_build_context_holds_everything_copied(image: str) -> None:
    """BuildKit reads <name>.Dockerfile.dockerignore; a COPY it filters out breaks the build."""
    ignore = (DOCKER_DIR / f"{image}.Dockerfile.dockerignore").read_text(encoding="utf-8")
    allowed = {line[1:].rstrip("/") for line in ignore.splitlines() if line.startswith("!")}
    assert "*" in ignore.splitlines(), "everything else stays out of the context"
    for keyword, args in instructions(dockerfile(image)):
        if keyword == "COPY" and "--from=" not in args:
            *sources, _ = args.split()
            for source in sources:
                assert source.rstrip("/") in allowed, f"{source} is not in the build context"
                assert (REPO_ROOT / source).exists()


def test_inference_image_builds_llama_for_cpu_or_cuda_and_bakes_the_model() -> None:
    steps = instructions(dockerfile("inference"))
    args = {a.split("=", 1)[0] for k, a in steps if k == "ARG"}
    assert {"ACCELERATOR", "LLAMA_CMAKE_ARGS", "CUDA_ARCHITECTURES"} <= args
    text = dockerfile("inference").read_text(encoding="utf-8")
    assert "build-base-${ACCELERATOR}" in text and "runtime-${ACCELERATOR}" in text
    runs = " ".join(a for k, a in steps if k == "RUN")
    assert "-DGGML_CUDA=on -DGGML_NATIVE=OFF" in runs and "march=native" not in runs
    assert "scripts/build-llama-wheel.sh" in text
    # The served model is the default catalog model, baked where the service looks for it.
    from services.inference.catalog import DEFAULT_MODEL

    assert f"ARG MODEL={DEFAULT_MODEL}\n" in text
    assert 'precache_models.py --gguf-dir /opt/raildebug/models --model "${MODEL}"' in text
    assert "RAILDEBUG_INFERENCE_MODEL=${MODEL}" in text
    assert "RAILDEBUG_INFERENCE_MODEL_CACHE_DIR=/opt/raildebug/models" in text
