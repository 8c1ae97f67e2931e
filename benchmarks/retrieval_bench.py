"""Retrieval benchmark: ingest throughput, query latency at 10k and 100k chunks, RSS.

    .venv/bin/python benchmarks/retrieval_bench.py [--sizes 10000,100000] [--queries 40]

What is measured, and how:
* Embedding: the real all-MiniLM-L6-v2 encodes a sample of real chunks (chunks/s) and each
  benchmark query once (query embedding latency). Reported on its own.
* Scaling: embedding 100k chunks on two CPU cores would take most of an hour, so the corpus
  is scaled synthetically. Documents are built from the sample corpus's chunks with a varied
  identifier and unit number per copy; each chunk's vector is the real embedding of its
  template chunk plus Gaussian noise (re-normalised), so the vector leg searches a realistic
  distribution. The ingest path is the real one (chunking, analysis, LanceDB writes, BM25
  index build): only the model call is replaced. Ingest throughput with embedding included
  is derived from both rates (1 / (1/store_rate + 1/embed_rate)).
* Queries: the development set's queries against the scaled store, bm25 / vector / hybrid,
  query embeddings cached beforehand (the target excludes them), `--repeats` rounds.
* RSS of this process after the largest ingest and its queries (model included).
* From 50k chunks on the store builds an ANN vector index (see store.py); reported: its
  recall@10 against an exact scan, and the share of the exact top 10 that is among the 50
  candidates the vector leg hands to fusion. The synthetic vectors are noisy copies of ~400
  templates, i.e. dense clusters of near-ties: a hard case for an ANN index.

Prints a table and writes benchmarks/results/retrieval_bench.{json,png}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psutil
from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from services.retriever.chunking import chunk_document  # noqa: E402
from services.retriever.embedding import Embedder  # noqa: E402
from services.retriever.index import RetrievalIndex, embedding_text  # noqa: E402
from services.retriever.models import SearchQuery, SourceDocument  # noqa: E402
from services.retriever.sources import iter_source_files, read_source_document  # noqa: E402
from services.retriever.store import LanceChunkStore  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results"
SAMPLE = REPO_ROOT / "data" / "sample-corpus"
QUERIES = REPO_ROOT / "data" / "eval" / "sentinel-queries.jsonl"
CHUNKS_PER_DOC = 20
NOISE = 0.35
MODES = {"bm25": 0.0, "vector": 1.0, "hybrid": 0.5}
LEG_DEPTH = 50  # candidates each leg returns for k <= 12 (index.MIN_LEG_LIMIT)

Matrix = npt.NDArray[np.float32]


class TemplateVectors:
    """Embedder stand-in for the scaling runs: a chunk's vector is its template's real
    embedding plus noise; queries get their real, precomputed embeddings."""

    def __init__(self, model: Embedder, templates: dict[str, Matrix], queries: dict[str, Matrix]):
        self.model_name = model.model_name
        self.dimension = model.dimension
        self._keys = list(templates)
        self._templates = np.stack([templates[k] for k in self._keys])
        self._queries = queries

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> Matrix:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
            rng = np.random.default_rng(seed)
            base = self._templates[seed % len(self._templates)]
            vector = base + NOISE * rng.standard_normal(self.dimension).astype(np.float32) / 20
            out[row] = vector / np.linalg.norm(vector)
        return out

    def encode_query(self, text: str) -> Matrix:
        return self._queries[text]


def sample_chunks() -> list[SourceDocument]:
    return [
        read_source_document(SAMPLE, path)
        for _, path in iter_source_files(SAMPLE, exclude_globs=["README.md", "QUESTIONS.md"])
    ]


def synthetic_documents(templates: list[str], chunks: int) -> list[SourceDocument]:
    """Markdown documents of CHUNKS_PER_DOC sections, each a varied copy of a real chunk."""
    docs: list[SourceDocument] = []
    for d in range(max(1, chunks // CHUNKS_PER_DOC)):
        sections = []
        for s in range(CHUNKS_PER_DOC):
            n = d * CHUNKS_PER_DOC + s
            body = templates[n % len(templates)].replace("#", "")
            sections.append(f"## Unit {n} ixl_unit_{n % 997}_cfg\n\nSite code S{n % 89}-K.\n{body}")
        docs.append(
            SourceDocument(
                f"synthetic/{d // 100:03d}/doc-{d:05d}.md",
                "\n\n".join(sections) + "\n",
                metadata={"subsystem": ("points", "track", "balise", "brake")[d % 4]},
            )
        )
    return docs


def _advance(bar: tqdm[Any], done: int) -> None:
    bar.update(done - bar.n)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--embed-sample", type=int, default=512)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--store",
        default="lancedb",
        help="comma-separated: lancedb, weaviate (the server of RAILDEBUG_RETRIEVER_WEAVIATE_URL, "
        "a scratch collection); with weaviate, results go to retrieval_bench_stores.{json,png}",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    stores = [s.strip() for s in args.store.split(",") if s.strip()]
    if not stores or set(stores) - {"lancedb", "weaviate"}:
        parser.error(f"--store takes lancedb and/or weaviate, got {args.store!r}")
    process = psutil.Process()

    model = Embedder()
    docs = sample_chunks()
    real_chunks = [c for doc in docs for c in chunk_document(doc)]
    texts = [embedding_text(c) for c in real_chunks]
    sample = (texts * (args.embed_sample // len(texts) + 1))[: args.embed_sample]
    started = time.perf_counter()
    model.encode(sample)
    embed_rate = len(sample) / (time.perf_counter() - started)
    template_vectors = model.encode(texts)

    queries = [json.loads(line)["text"] for line in QUERIES.read_text().splitlines()]
    queries = (queries * (args.queries // len(queries) + 1))[: args.queries]
    query_ms: list[float] = []
    query_vectors: dict[str, Matrix] = {}
    for text in dict.fromkeys(queries):
        started = time.perf_counter()
        query_vectors[text] = model.encode([text])[0]
        query_ms.append((time.perf_counter() - started) * 1000)
    stand_in = TemplateVectors(
        model, dict(zip(texts, template_vectors, strict=True)), query_vectors
    )

    rows: list[dict[str, Any]] = []
    for size in sizes:
        synthetic = synthetic_documents([c.text for c in real_chunks], size)
        for backend in stores:
            with scratch_store(backend, stand_in) as index:
                rows += measure(index, backend, synthetic, queries, query_vectors, args, embed_rate)
                rows[-1]["rss_mib"] = process.memory_info().rss / 2**20
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0],
            "python": platform.python_version(),
        },
        "embedding": {
            "model": model.model_name,
            "chunks_per_s": embed_rate,
            "query_p50_ms": percentile(query_ms, 50),
            "query_p95_ms": percentile(query_ms, 95),
        },
        "synthetic_vectors": True,
        "stores": stores,
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "retrieval_bench_stores" if "weaviate" in stores else "retrieval_bench"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    plot(result, RESULTS / f"{name}.png")
    return 0


@contextmanager
def scratch_store(backend: str, embedder: TemplateVectors) -> Iterator[RetrievalIndex]:
    """An empty index on `backend`: a temporary LanceDB directory, or a scratch collection on
    the configured Weaviate server, dropped afterwards."""
    with tempfile.TemporaryDirectory(prefix="raildebug-bench-") as scratch:
        if backend == "lancedb":
            yield RetrievalIndex(Path(scratch), embedder=embedder, batch_size=2048)
            return
        from raildebug.settings import RetrieverSettings
        from services.retriever.backends import open_weaviate_store
        from services.retriever.weaviate_store import WeaviateChunkStore

        name = f"RailDebugBench{uuid.uuid4().hex[:12]}"
        settings = RetrieverSettings().model_copy(update={"weaviate_collection": name})
        store = open_weaviate_store(settings, embedder)
        assert isinstance(store, WeaviateChunkStore)
        try:
            yield RetrievalIndex(Path(scratch), embedder=embedder, store=store, batch_size=2048)
        finally:
            store.drop()


def measure(
    index: RetrievalIndex,
    backend: str,
    synthetic: list[SourceDocument],
    queries: list[str],
    query_vectors: dict[str, Matrix],
    args: argparse.Namespace,
    embed_rate: float,
) -> list[dict[str, Any]]:
    """Ingest `synthetic`, then time every mode's queries: one row per mode, then the ingest row."""
    rows: list[dict[str, Any]] = []
    size = len(synthetic) * CHUNKS_PER_DOC
    with tqdm(total=len(synthetic), unit="doc", desc=f"ingest {size} ({backend})") as bar:
        started = time.perf_counter()
        report = index.ingest(synthetic, progress=lambda done: _advance(bar, done))
        ingest_s = time.perf_counter() - started
    chunks = report.chunks_written
    store_rate = chunks / ingest_s
    for mode, alpha in MODES.items():
        for text in queries[:3]:  # warm caches and file handles
            index.search(SearchQuery(text, k=10, alpha=alpha))
        latencies: list[float] = []
        for _ in range(args.repeats):
            for text in tqdm(queries, desc=f"{mode} @ {size} ({backend})", leave=False):
                started = time.perf_counter()
                index.search(SearchQuery(text, k=10, alpha=alpha))
                latencies.append((time.perf_counter() - started) * 1000)
        rows.append(
            {
                "store": backend,
                "chunks": chunks,
                "mode": mode,
                "p50_ms": percentile(latencies, 50),
                "p95_ms": percentile(latencies, 95),
                "queries": len(latencies),
            }
        )
    ingest: dict[str, Any] = {
        "store": backend,
        "chunks": chunks,
        "mode": "ingest",
        "store_chunks_per_s": store_rate,
        "with_embedding_chunks_per_s": 1 / (1 / store_rate + 1 / embed_rate),
        "ingest_s": ingest_s,
    }
    store = index.store
    if isinstance(store, LanceChunkStore):  # the ANN index's recall against an exact scan
        overlap, covered = [], []
        for text in dict.fromkeys(queries):
            approx = [c.id for c, _ in store.vector_search(query_vectors[text], LEG_DEPTH)]
            exact = {c.id for c, _ in store.vector_search(query_vectors[text], 10, exact=True)}
            overlap.append(len(set(approx[:10]) & exact) / 10)
            covered.append(len(set(approx) & exact) / 10)
        ingest |= {
            "vector_index": store.has_vector_index(),
            "ann_recall_at_10": float(np.mean(overlap)),
            "ann_exact_top10_in_leg": float(np.mean(covered)),
        }
    rows.append(ingest)
    return rows


def print_table(result: dict[str, Any]) -> None:
    embedding = result["embedding"]
    print(
        f"\nembedding ({embedding['model']}): {embedding['chunks_per_s']:.1f} chunks/s, "
        f"query p50 {embedding['query_p50_ms']:.1f} ms / p95 {embedding['query_p95_ms']:.1f} ms"
    )
    rows = result["rows"]
    print(f"\n{'store':<9} {'chunks':>8}  {'mode':<7} {'p50 ms':>8} {'p95 ms':>8}")
    for row in rows:
        if row["mode"] != "ingest":
            print(
                f"{row['store']:<9} {row['chunks']:>8}  {row['mode']:<7} {row['p50_ms']:8.1f} "
                f"{row['p95_ms']:8.1f}"
            )
    print(
        f"\n{'store':<9} {'chunks':>8}  {'store/s':>9} {'+embed/s':>9} {'ingest s':>9} "
        f"{'RSS MiB':>8} {'ANN index':>9} {'ANN R@10':>8} {'top10 in leg':>12}"
    )
    for row in rows:
        if row["mode"] == "ingest":
            ann = (
                f"{row['vector_index']!s:>9} {row['ann_recall_at_10']:8.3f} "
                f"{row['ann_exact_top10_in_leg']:12.3f}"
                if "vector_index" in row
                else f"{'(server)':>9} {'-':>8} {'-':>12}"
            )
            print(
                f"{row['store']:<9} {row['chunks']:>8}  {row['store_chunks_per_s']:9.0f} "
                f"{row['with_embedding_chunks_per_s']:9.1f} {row['ingest_s']:9.1f} "
                f"{row['rss_mib']:8.0f} {ann}"
            )


def plot(result: dict[str, Any], path: Path) -> None:
    """p50 and p95 panels; a colour per mode, a line style per store."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["mode"] != "ingest"]
    stores = result.get("stores", ["lancedb"])
    colours = dict(zip(MODES, ("tab:blue", "tab:orange", "tab:green"), strict=True))
    styles = dict(zip(stores, ("-o", "--s"), strict=False))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, stat in zip(axes, ("p50_ms", "p95_ms"), strict=True):
        for backend in stores:
            for mode in MODES:
                mine = sorted(
                    (r for r in rows if r.get("store", "lancedb") == backend and r["mode"] == mode),
                    key=lambda r: int(r["chunks"]),
                )
                ax.plot(
                    [int(r["chunks"]) for r in mine],
                    [float(r[stat]) for r in mine],
                    styles[backend],
                    color=colours[mode],
                    label=f"{backend} {mode}" if len(stores) > 1 else mode,
                )
        if stat == "p95_ms":
            ax.axhline(50, color="grey", linewidth=0.8, label="p95 target (hybrid)")
        ax.set_xscale("log")
        ax.set_xlabel("chunks in store")
        ax.set_title(stat.removesuffix("_ms"))
    axes[0].set_ylabel("query latency, ms (query embedding excluded)")
    axes[1].legend(fontsize=7)
    fig.suptitle("RailDebug retriever latency (2 CPU cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
