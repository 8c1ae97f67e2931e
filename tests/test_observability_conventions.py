"""One naming convention for every metric and span attribute (no model, no server).

Names come only from raildebug.observability.conventions; durations are in seconds; what the
Prometheus exporter shows on /metrics is what README lists; the retriever records its own.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider

from raildebug.observability import conventions as conv
from raildebug.observability import metrics as rd_metrics

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("apps", "raildebug", "services", "training")
NAME = re.compile(r"^(gen_ai|rpc|error|raildebug)(\.[a-z][a-z0-9_]*)+$")
INSTRUMENT_MODULES = (
    "services.inference.instruments",
    "services.orchestrator.instruments",
    "services.retriever.instruments",
    "raildebug.grpc_runtime.interceptors",
    "raildebug.grpc_runtime.rate_limit",
)
CREATE_CALLS = {
    "create_counter",
    "create_up_down_counter",
    "create_histogram",
    "create_gauge",
    "create_observable_counter",
    "create_observable_up_down_counter",
    "create_observable_gauge",
}


def test_every_metric_follows_the_convention() -> None:
    names = [spec.name for spec in conv.METRICS]
    assert len(names) == len(set(names))
    for spec in conv.METRICS:
        assert NAME.match(spec.name), spec.name
        assert spec.description, spec.name
        assert spec.unit == conv.SECONDS or re.fullmatch(r"\{[a-z]+\}", spec.unit), spec
        last = spec.name.rsplit(".", 1)[1]
        if "duration" in last or "time" in last:
            assert spec.unit == conv.SECONDS, f"{spec.name} is a duration: unit must be 's'"
        if spec.unit == conv.SECONDS:
            assert spec.kind == "histogram", spec.name
        if spec.kind == "histogram":
            assert spec.buckets and list(spec.buckets) == sorted(set(spec.buckets)), spec.name
        # a name is never also the namespace of another (semantic conventions' rule)
        assert not any(other.startswith(spec.name + ".") for other in names), spec.name


def test_every_attribute_follows_the_convention() -> None:
    assert len(conv.ATTRIBUTES) == len(set(conv.ATTRIBUTES))
    ours = [name for name in conv.ATTRIBUTES if name.startswith("raildebug.")]
    for name in conv.ATTRIBUTES:
        assert NAME.match(name), name
    for name in ours:
        assert not any(other.startswith(name + ".") for other in ours), name


def test_the_services_create_exactly_the_instruments_of_the_conventions() -> None:
    for module in INSTRUMENT_MODULES:
        importlib.import_module(module)
    created = rd_metrics.created_metrics()
    assert set(created) == {spec.name for spec in conv.METRICS}
    assert all(created[spec.name] == spec for spec in conv.METRICS)


def _python_files() -> list[Path]:
    return [
        path
        for folder in SOURCE_DIRS
        for path in (REPO_ROOT / folder).rglob("*.py")
        if "v1" not in path.relative_to(REPO_ROOT).parts
    ]


def _literal_keys(node: ast.expr) -> list[str]:
    if isinstance(node, ast.Dict):
        return [
            k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)
        ]
    return []


def test_no_code_spells_a_metric_or_attribute_name_itself() -> None:
    """Instruments only via raildebug.observability.metrics; attribute keys are constants."""
    offenders: list[str] = []
    factory = REPO_ROOT / "raildebug" / "observability" / "metrics.py"
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(REPO_ROOT)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            method = node.func.attr
            if method in CREATE_CALLS and path != factory:
                offenders.append(f"{where}:{node.lineno} {method}")
            literal: list[str] = []
            if method == "set_attribute" and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    literal.append(first.value)
            if method == "set_attributes" and node.args:
                literal += _literal_keys(node.args[0])
            if method in {"add", "record", "set"} and len(node.args) == 2:
                literal += _literal_keys(node.args[1])
            for keyword in node.keywords:
                if keyword.arg == "attributes":
                    literal += _literal_keys(keyword.value)
            offenders += [f"{where}:{node.lineno} {key!r}" for key in literal]
    assert not offenders, "name these in raildebug/observability/conventions.py: " + str(offenders)


def _exposition() -> str:
    """Every instrument of the conventions through a Prometheus reader, one value each."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import REGISTRY, generate_latest

    provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    meter = provider.get_meter("conventions-test")
    try:
        for spec in conv.METRICS:
            if spec.kind == "counter":
                rd_metrics.counter(meter, spec).add(1)
            elif spec.kind == "up_down_counter":
                rd_metrics.up_down_counter(meter, spec).add(1)
            elif spec.kind == "gauge":
                rd_metrics.gauge(meter, spec).set(1)
            else:
                rd_metrics.histogram(meter, spec).record(0.5)
        return generate_latest(REGISTRY).decode()
    finally:
        provider.shutdown()  # unregisters the reader's collector


def test_prometheus_shows_the_names_readme_lists() -> None:
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", _exposition(), flags=re.MULTILINE))
    expected_type = {
        "counter": "counter",
        "up_down_counter": "gauge",
        "gauge": "gauge",
        "histogram": "histogram",
    }
    for spec in conv.METRICS:
        assert types.get(spec.prometheus_name) == expected_type[spec.kind], spec.prometheus_name
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`((?:gen_ai|rpc|raildebug)_[a-z0-9_]+)`", readme))
    metric_names = {spec.prometheus_name for spec in conv.METRICS}
    labels = {name.replace(".", "_") for name in conv.ATTRIBUTES}
    assert metric_names <= listed, sorted(metric_names - listed)
    assert listed <= metric_names | labels, sorted(listed - metric_names - labels)


_RETRIEVER_SCRIPT = r"""
import hashlib, json, sys
import numpy as np
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

from services.retriever.index import RetrievalIndex
from services.retriever.models import SearchQuery, SourceDocument


class HashEmbedder:
    model_name = "hash-test"
    dimension = 16

    def encode(self, texts, batch_size=None):
        return np.stack([self.encode_query(t) for t in texts])

    def encode_query(self, text):
        raw = np.frombuffer(hashlib.sha256(text.encode()).digest()[:16], dtype=np.uint8)
        vector = raw.astype(np.float32) + 1.0
        return vector / np.linalg.norm(vector)


index = RetrievalIndex(sys.argv[1], embedder=HashEmbedder())
docs = [
    SourceDocument("a.md", "# Points\n\nE73-B when the point fails to lock."),
    SourceDocument("b.md", "# Track\n\nThe section shows occupied with no train."),
]
index.ingest(docs)
index.ingest(docs[:1])  # unchanged
for alpha in (0.0, 0.5, 1.0):
    index.search(SearchQuery(text="point fails to lock", k=2, alpha=alpha))
seen = {}
for rm in reader.get_metrics_data().resource_metrics:
    for sm in rm.scope_metrics:
        for m in sm.metrics:
            seen[m.name] = {
                "unit": m.unit,
                "attributes": sorted(
                    {json.dumps(dict(p.attributes), sort_keys=True) for p in m.data.data_points}
                ),
            }
print(json.dumps(seen))
"""


@pytest.mark.service  # the retriever runs in its own process
@pytest.mark.timeout(300)
def test_the_retriever_records_search_ingest_and_store_size(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _RETRIEVER_SCRIPT, str(tmp_path / "store")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    retrieval = {s.name: s for s in conv.METRICS if s.name.startswith("raildebug.retrieval.")}
    assert set(retrieval) <= set(seen), sorted(seen)
    for name, spec in retrieval.items():
        assert seen[name]["unit"] == spec.unit
    assert _values(seen, conv.METRIC_RETRIEVAL_SEARCH_DURATION, conv.ATTR_RETRIEVAL_MODE) == {
        "keyword",
        "vector",
        "hybrid",
    }
    assert _values(seen, conv.METRIC_RETRIEVAL_LEG_DURATION, conv.ATTR_RETRIEVAL_LEG) == {
        "keyword",
        "vector",
    }
    assert _values(
        seen, conv.METRIC_RETRIEVAL_INGEST_DOCUMENTS, conv.ATTR_RETRIEVAL_INGEST_OUTCOME
    ) == {"written", "unchanged"}


def _values(seen: dict[str, Any], spec: conv.MetricSpec, attribute: str) -> set[str]:
    return {json.loads(points)[attribute] for points in seen[spec.name]["attributes"]}
