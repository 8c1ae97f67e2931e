"""`raildebug eval retrieval`: metric arithmetic, input errors, and the CLI end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from raildebug.errors import InvalidRequest
from services.retriever.evaluation import (
    default_configs,
    load_corpus,
    load_qrels,
    load_queries,
    passage_document,
    score,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_metrics_match_hand_computed_values() -> None:
    qrels = {"q1": {"a": 2, "b": 1}, "q2": {"c": 1}, "q3": {"d": 1}}
    rankings = {"q1": ["b", "x", "a"], "q2": ["c"], "q3": []}
    # q1: DCG = 1/log2(2) + 2/log2(4) = 2; ideal = 2 + 1/log2(3)  (trec_eval linear gains)
    q1_ndcg = 2 / (2 + 1 / math.log2(3))
    metrics = score(qrels, rankings)
    assert metrics["nDCG@10"] == pytest.approx((q1_ndcg + 1.0 + 0.0) / 3)
    assert metrics["R@10"] == pytest.approx((1.0 + 1.0 + 0.0) / 3)  # q3 found nothing: 0
    assert metrics["RR"] == pytest.approx((1.0 + 1.0 + 0.0) / 3)


def test_configuration_names() -> None:
    names = [c.name for c in default_configs([0.25, 0.75])]
    assert names == [
        "bm25",
        "vector",
        "hybrid",
        "hybrid@0.25",
        "hybrid@0.75",
        "hybrid_ranked",
        "weaviate_default",
    ]
    weaviate = default_configs([])[-1]
    assert weaviate.alpha == 0.75
    assert not weaviate.profile.pin_exact_identifiers


def test_bad_inputs_name_the_line(tmp_path: Path) -> None:
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("q1 0 doc 2\nq2 doc\n")
    with pytest.raises(InvalidRequest, match=r"qrels.tsv:2: expected 'qid iteration doc_id grade'"):
        load_qrels(qrels)
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"qid": "q1", "text": "E73-B"}\n{"qid": "q2"}\n')
    with pytest.raises(InvalidRequest, match=r"queries.jsonl:2: query needs string field"):
        load_queries(queries)
    with pytest.raises(InvalidRequest, match="cannot read corpus file"):
        load_corpus(tmp_path / "missing.jsonl")


def test_passages_keep_their_ids_and_code_stays_code() -> None:
    code = passage_document(
        {"id": "p7", "title": "crc.c: crc16()", "text": "int crc16(void) {}", "source": "a/crc.c",
         "kind": "code"}
    )  # fmt: skip
    assert (code.source, code.kind, code.language) == ("p7", "code", "c")
    assert (code.title, code.content) == ("crc.c: crc16()", "int crc16(void) {}")
    spec = passage_document({"id": "p8", "text": "Packet 5", "source": "x.doc", "kind": "spec"})
    assert (spec.kind, spec.language, spec.content) == ("text", "text", "Packet 5")


PASSAGES = [
    ("p1", "Packet 44 rejected", "Packet 44 with an unknown NID_XUSER is rejected by the BLI."),
    ("p2", "Brake at standstill", "A parked locomotive got an emergency brake demand."),
    ("p3", "Track occupied", "Track circuit shows occupied with no train; check the ballast."),
    ("p4", "Lock timeout", "Raise E73-B when pm_lock_timeout_ms expires after the throw."),
    ("p5", "Axle counter", "Reset needs a sweep run; ace_min_sweep_axles sets the minimum."),
]


def raildebug(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command in its own process (it configures process-wide logging)."""
    return subprocess.run(
        [sys.executable, "-m", "apps.cli.main", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.model  # the vector configurations embed with MiniLM
@pytest.mark.service  # the CLI runs in its own process
def test_cli_scores_every_configuration(tmp_path: Path) -> None:
    corpus = tmp_path / "passages.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"id": i, "title": t, "text": x, "source": f"{i}.md", "kind": "doc"}) + "\n"
            for i, t, x in PASSAGES
        )
    )
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        "".join(
            json.dumps({"qid": q, "text": t}) + "\n"
            for q, t in [("q1", "NID_XUSER"), ("q2", "pm_lock_timeout_ms"), ("q3", "unjudged")]
        )
    )
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("q1 0 p1 2\nq2 0 p4 2\n")
    argv = ["eval", "retrieval", "--corpus", str(corpus), "--queries", str(queries)]
    done = raildebug(*argv, "--qrels", str(qrels), "--alphas", "0.3", "--json")
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)  # stdout holds only the JSON
    assert list(results) == [
        "bm25",
        "vector",
        "hybrid",
        "hybrid@0.3",
        "hybrid_ranked",
        "weaviate_default",
    ]
    for metrics in results.values():
        assert set(metrics) == {"nDCG@10", "R@10", "R@50", "RR"}
        assert all(0.0 <= value <= 1.0 for value in metrics.values())
    assert results["bm25"] == {"nDCG@10": 1.0, "R@10": 1.0, "R@50": 1.0, "RR": 1.0}

    qrels.write_text("zz 0 p1 1\n")
    refused = raildebug(*argv, "--qrels", str(qrels))
    assert refused.returncode == 2
    assert "no query has a judgement" in refused.stderr
