"""A real kill -9 in the middle of an ingest, then a re-run: consistent store, no duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import lancedb
import pytest

from services.retriever.chunking import chunk_document
from services.retriever.embedding import Embedder
from services.retriever.index import RetrievalIndex
from services.retriever.models import SearchQuery, SourceDocument
from services.retriever.store import TABLE_NAME

pytestmark = pytest.mark.service  # ingests in a child process and kills it

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = 40
KILL_AFTER = 5  # documents reported finished before the kill

# Ingests one document per write batch and reports each finished document on stdout, so the
# parent can kill it while later documents are still being embedded and written.
CHILD = """
import sys
from pathlib import Path
from services.retriever.index import RetrievalIndex
from tests.retriever.test_retriever_crash import documents

index = RetrievalIndex(Path(sys.argv[1]), batch_size=1)
index.ingest(documents(), progress=lambda done: print(f"done {done}", flush=True))
print("finished", flush=True)
"""


def documents() -> list[SourceDocument]:
    return [
        SourceDocument(
            f"docs/manual-{i:02d}.md",
            f"# Manual {i}\n\n## Fault\n\nMarker crashtoken_{i:02d} appears when relay {i} "
            f"drops.\n\n## Repair\n\nReplace relay {i} and re-test the circuit.\n",
        )
        for i in range(DOCUMENTS)
    ]


def _rows(store_dir: Path) -> list[tuple[str, str]]:
    table = lancedb.connect(str(store_dir)).open_table(TABLE_NAME)
    data = table.to_arrow().select(["id", "source"])
    return list(zip(data.column("id").to_pylist(), data.column("source").to_pylist(), strict=True))


def _assert_consistent(store_dir: Path) -> set[str]:
    """Every stored source holds exactly its complete set of chunks; returns those sources."""
    rows = _rows(store_dir)
    assert [i for i, n in Counter(chunk_id for chunk_id, _ in rows).items() if n > 1] == []
    expected = {doc.source: {c.id for c in chunk_document(doc)} for doc in documents()}
    stored: dict[str, set[str]] = {}
    for chunk_id, source in rows:
        stored.setdefault(source, set()).add(chunk_id)
    for source, chunk_ids in stored.items():
        assert chunk_ids == expected[source], f"{source} is half-written"
    return set(stored)


def test_kill_9_mid_ingest_then_rerun(tmp_path: Path, embedder: Embedder) -> None:
    store_dir = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "RAILDEBUG_LOG_LEVEL": "WARNING"}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store_dir)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    deadline = time.monotonic() + 300
    done = 0
    try:
        for line in child.stdout:
            if line.startswith("done "):
                done = int(line.split()[1])
                if done >= KILL_AFTER:
                    break
            assert time.monotonic() < deadline, "child ingest made no progress"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert KILL_AFTER <= done < DOCUMENTS  # killed while documents were still pending

    survivors = _assert_consistent(store_dir)
    assert len(survivors) >= KILL_AFTER

    index = RetrievalIndex(store_dir, embedder=embedder)
    report = index.ingest(documents())
    assert report.errors == []
    assert report.documents_unchanged == len(survivors)
    assert report.documents_written == DOCUMENTS - len(survivors)

    assert _assert_consistent(store_dir) == {doc.source for doc in documents()}
    assert index.stats().passages == sum(len(chunk_document(d)) for d in documents())
    for i in (0, DOCUMENTS - 1):
        hit = index.search(SearchQuery(f"crashtoken_{i:02d}", k=1, alpha=0.0)).passages[0]
        assert hit.chunk.source == f"docs/manual-{i:02d}.md"
    # and once more: nothing left to do
    again = index.ingest(documents())
    assert (again.documents_unchanged, again.documents_written) == (DOCUMENTS, 0)
