"""Inference benchmark: our batching engine vs raw llama-cpp-python and vs llama.cpp's llama-server.

    .venv/bin/python benchmarks/inference_bench.py [--threads 2] [--parts single,sweep,overload]

Same GGUF (packaged Gemma 3 270M Q4_K_M), same thread count, greedy decoding, one run:
1. single: one stream, 128 new tokens; time to first token and decode tokens/s through
   `Generate` over gRPC (service in its own process) vs `Llama.create_completion(stream=True)`
   in this process. Median of --repeats.
2. sweep: 1, 2, 4, 8, 16 concurrent streams of 128 new tokens over mixed prompt lengths; aggregate
   tokens/s (all tokens / wall time) and p50/p95 TTFT, vs `llama-server --parallel N` built from
   the llama.cpp that the llama-cpp-python sdist vendors (built once, outside the repository, in
   ~/.cache/raildebug/llama-server, without -march=native: native builds crash in AMX kernels on
   some VMs). Both sides get N slots and N x 640 context cells.
3. overload: 64 simultaneous callers against 8 slots and a queue of 16; every call must stream to
   completion or get RESOURCE_EXHAUSTED; the service's RSS is sampled before, during, after.

Prints a table and writes benchmarks/results/inference_bench.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import psutil
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from apps.cli.health import wait_until_serving  # noqa: E402
from raildebug.v1 import inference_pb2, inference_pb2_grpc  # noqa: E402
from services.inference.model_files import resolve_model_path  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
LLAMA_CACHE = Path.home() / ".cache" / "raildebug" / "llama-server"
LLAMA_CPP_PYTHON = "0.3.36"
CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=OFF",
    "-DGGML_AVX=ON",
    "-DGGML_AVX2=ON",
    "-DGGML_FMA=ON",
    "-DGGML_F16C=ON",
    "-DGGML_BMI2=ON",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
]
NEW_TOKENS = 128
CELLS_PER_SLOT = 640
CORPUS = REPO / "data" / "sample-corpus"


@dataclass
class StreamResult:
    ttft_s: float
    tokens: int
    decode_s: float  # first token to last token
    total_s: float


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def mixed_prompts(count: int) -> list[str]:
    """Short, medium and long prompts cut from the sample corpus (about 20 to 400 tokens)."""
    texts = [p.read_text(errors="replace") for p in sorted(CORPUS.rglob("*.md"))]
    body = "\n".join(texts)
    sizes = [120, 700, 1800]
    prompts = []
    for i in range(count):
        start = (i * 997) % max(len(body) - 2000, 1)
        prompts.append(body[start : start + sizes[i % len(sizes)]] + "\nIn short,")
    return prompts


# --- our service ------------------------------------------------------------------------


@contextmanager
def raildebug_service(model: Path, threads: int, slots: int, queue: int) -> Iterator[Any]:
    port = _free_port()
    env = {
        **os.environ,
        "RAILDEBUG_INFERENCE_PORT": str(port),
        "RAILDEBUG_INFERENCE_MODEL_PATH": str(model),
        "RAILDEBUG_INFERENCE_N_THREADS": str(threads),
        "RAILDEBUG_INFERENCE_SLOTS": str(slots),
        "RAILDEBUG_INFERENCE_MAX_QUEUE": str(queue),
        "RAILDEBUG_INFERENCE_N_CTX": str(max(slots * CELLS_PER_SLOT, 2048)),
        "RAILDEBUG_INFERENCE_MAX_CONCURRENT_RPCS": "256",
        "RAILDEBUG_INFERENCE_MAX_WORKERS": "96",
        "RAILDEBUG_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "apps.cli.main", "serve", "inference"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until_serving(f"127.0.0.1:{port}", timeout_s=120) == "SERVING"
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield inference_pb2_grpc.InferenceStub(channel), process
        channel.close()
    finally:
        process.terminate()
        process.wait(30)


def grpc_stream(stub: Any, prompt: str, max_tokens: int = NEW_TOKENS) -> StreamResult:
    request = inference_pb2.GenerateRequest(
        prompt=prompt,
        max_tokens=max_tokens,
        sampling=inference_pb2.SamplingParams(temperature=0.0, repeat_penalty=1.0),
    )
    started = time.perf_counter()
    first = last = 0.0
    tokens = 0
    for message in stub.Generate(request, timeout=600):
        now = time.perf_counter()
        if message.WhichOneof("event") == "delta":
            first = first or now
            last = now
        else:
            tokens = message.result.usage.completion_tokens
    return StreamResult(first - started, tokens, last - first, last - started)


# --- llama-server ----------------------------------------------------------------------


def llama_server_binary() -> Path:
    """Build llama-server from the llama-cpp-python sdist's vendored llama.cpp (cached)."""
    binary = LLAMA_CACHE / "build" / "bin" / "llama-server"
    if binary.exists():
        return binary
    LLAMA_CACHE.mkdir(parents=True, exist_ok=True)
    sdist = LLAMA_CACHE / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
    if not sdist.exists():
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"),
                *(f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "-d", str(LLAMA_CACHE)),
            ],
            check=True,
        )
    source = LLAMA_CACHE / f"llama_cpp_python-{LLAMA_CPP_PYTHON}" / "vendor" / "llama.cpp"
    if not source.exists():
        with tarfile.open(sdist) as archive:
            archive.extractall(LLAMA_CACHE, filter="data")
    print("building llama-server (several minutes on 2 cores)", file=sys.stderr)
    build = LLAMA_CACHE / "build"
    subprocess.run(["cmake", "-S", str(source), "-B", str(build), *CMAKE_FLAGS], check=True)
    jobs = str(os.cpu_count() or 1)
    subprocess.run(["cmake", "--build", str(build), "--target", "llama-server", "-j", jobs])
    return binary


@contextmanager
def llama_server(model: Path, threads: int, slots: int) -> Iterator[Any]:
    import openai

    port = _free_port()
    process = subprocess.Popen(
        [
            *(str(llama_server_binary()), "-m", str(model), "--host", "127.0.0.1"),
            *("--port", str(port), "-t", str(threads), "-tb", str(threads), "-np", str(slots)),
            *("-c", str(max(slots * CELLS_PER_SLOT, 2048)), "--no-webui", "--log-disable"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                client.models.list()
                break
            except openai.OpenAIError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        yield client, process
    finally:
        process.terminate()
        process.wait(30)


def openai_stream(client: Any, prompt: str) -> StreamResult:
    started = time.perf_counter()
    first = last = 0.0
    tokens = 0
    stream = client.completions.create(
        model="gemma", prompt=prompt, max_tokens=NEW_TOKENS, temperature=0.0, stream=True
    )
    for chunk in stream:
        now = time.perf_counter()
        if chunk.choices and chunk.choices[0].text:
            first = first or now
            last = now
            tokens += 1  # llama-server streams one token per chunk
    return StreamResult(first - started, tokens, last - first, last - started)


# --- parts ------------------------------------------------------------------------------


def concurrent(streams: int, call: Callable[[str], StreamResult]) -> dict[str, Any]:
    prompts = mixed_prompts(streams)
    results: list[StreamResult] = []
    lock = threading.Lock()

    def one(prompt: str) -> None:
        result = call(prompt)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=one, args=(p,)) for p in prompts]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ttfts = sorted(r.ttft_s for r in results)
    tokens = sum(r.tokens for r in results)
    return {
        "streams": streams,
        "tokens": tokens,
        "wall_s": wall,
        "aggregate_tok_s": tokens / wall,
        "ttft_p50_ms": 1000 * statistics.median(ttfts),
        "ttft_p95_ms": 1000 * ttfts[min(len(ttfts) - 1, round(0.95 * (len(ttfts) - 1)))],
    }


def single(model: Path, threads: int, repeats: int) -> dict[str, Any]:
    from llama_cpp import Llama

    prompts = mixed_prompts(repeats)
    llama = Llama(
        model_path=str(model), n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False
    )

    def raw(prompt: str) -> StreamResult:
        started = time.perf_counter()
        first = last = 0.0
        tokens = 0
        for _ in llama.create_completion(
            prompt, max_tokens=NEW_TOKENS, temperature=0.0, repeat_penalty=1.0, stream=True
        ):
            now = time.perf_counter()
            first = first or now
            last = now
            tokens += 1
        return StreamResult(first - started, tokens, last - first, last - started)

    raw("warm up")
    raw_runs = [raw(p) for p in tqdm(prompts, desc="single: llama-cpp-python")]
    llama.close()
    with raildebug_service(model, threads, slots=1, queue=4) as (stub, _):
        grpc_stream(stub, "warm up", 4)
        ours = [grpc_stream(stub, p) for p in tqdm(prompts, desc="single: raildebug gRPC")]

    def summary(runs: list[StreamResult]) -> dict[str, float]:
        return {
            "decode_tok_s": statistics.median((r.tokens - 1) / r.decode_s for r in runs),
            "ttft_ms": 1000 * statistics.median(r.ttft_s for r in runs),
            "tokens": statistics.median(r.tokens for r in runs),
        }

    return {"llama_cpp_python": summary(raw_runs), "raildebug": summary(ours)}


def sweep(model: Path, threads: int, levels: list[int]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"raildebug": [], "llama_server": []}
    for n in tqdm(levels, desc="sweep"):
        with raildebug_service(model, threads, slots=n, queue=n) as (stub, _):
            grpc_stream(stub, "warm up", 4)
            out["raildebug"].append(concurrent(n, partial(grpc_stream, stub)))
        with llama_server(model, threads, slots=n) as (client, _):
            openai_stream(client, "warm up")
            out["llama_server"].append(concurrent(n, partial(openai_stream, client)))
    return out


def overload(model: Path, threads: int, callers: int = 64) -> dict[str, Any]:
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    with raildebug_service(model, threads, slots=8, queue=16) as (stub, process):
        rss = psutil.Process(process.pid)
        grpc_stream(stub, "warm up", 4)
        samples = {"before_mib": rss.memory_info().rss / 2**20, "during_mib": [], "after_mib": 0.0}

        def call(prompt: str) -> None:
            try:
                result = grpc_stream(stub, prompt, max_tokens=48)
                key = "completed" if result.tokens == 48 else "short"
            except grpc.RpcError as error:
                key = error.code().name
            with lock:
                outcomes[key] = outcomes.get(key, 0) + 1

        for wave in range(2):
            threads_ = [threading.Thread(target=call, args=(p,)) for p in mixed_prompts(callers)]
            for thread in threads_:
                thread.start()
            while any(t.is_alive() for t in threads_):
                samples["during_mib"].append(rss.memory_info().rss / 2**20)
                time.sleep(0.25)
            print(f"overload wave {wave + 1}: {outcomes}", file=sys.stderr)
        samples["after_mib"] = rss.memory_info().rss / 2**20
    accounted = sum(v for k, v in outcomes.items() if k in ("completed", "RESOURCE_EXHAUSTED"))
    return {
        "callers_per_wave": callers,
        "waves": 2,
        "outcomes": outcomes,
        "all_completed_or_resource_exhausted": accounted == 2 * callers,
        "rss_before_mib": samples["before_mib"],
        "rss_peak_mib": max(samples["during_mib"], default=0.0),
        "rss_after_mib": samples["after_mib"],
    }


# --- report -----------------------------------------------------------------------------


def report(results: dict[str, Any]) -> None:
    if "single" in results:
        s = results["single"]
        raw, ours = s["llama_cpp_python"], s["raildebug"]
        print("\nsingle stream            decode tok/s   TTFT ms")
        print(f"  llama-cpp-python      {raw['decode_tok_s']:12.1f} {raw['ttft_ms']:9.1f}")
        print(f"  raildebug (gRPC)      {ours['decode_tok_s']:12.1f} {ours['ttft_ms']:9.1f}")
        print(
            f"  ratio {s['ratio_tok_s']:.2f}x tokens/s (target >= 0.95), "
            f"{s['extra_ttft_ms']:+.1f} ms TTFT (target <= +10)"
        )
    if "sweep" in results:
        print("\nstreams   raildebug tok/s  p50/p95 TTFT ms   llama-server tok/s  p50/p95 TTFT ms")
        for ours, theirs in zip(
            results["sweep"]["raildebug"], results["sweep"]["llama_server"], strict=True
        ):
            print(
                f"{ours['streams']:7d} {ours['aggregate_tok_s']:16.1f} "
                f"{ours['ttft_p50_ms']:8.0f}/{ours['ttft_p95_ms']:<8.0f}"
                f"{theirs['aggregate_tok_s']:19.1f} "
                f"{theirs['ttft_p50_ms']:8.0f}/{theirs['ttft_p95_ms']:<8.0f}"
            )
        t = results.get("targets")
        if t:
            print(
                f"at 8 streams: {t['vs_own_single_x']:.2f}x own single-stream (target >= 2), "
                f"{t['vs_llama_server_x']:.2f}x llama-server (target >= 0.9)"
            )
    if "overload" in results:
        o = results["overload"]
        print(
            f"\noverload: {o['outcomes']} over {o['waves']} waves of {o['callers_per_wave']}; "
            f"RSS {o['rss_before_mib']:.0f} -> peak {o['rss_peak_mib']:.0f} -> "
            f"{o['rss_after_mib']:.0f} MiB"
        )


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if "sweep" in results:
        for name, label in (("raildebug", "RailDebug gRPC"), ("llama_server", "llama-server")):
            rows = results["sweep"][name]
            n = [r["streams"] for r in rows]
            axes[0].plot(n, [r["aggregate_tok_s"] for r in rows], marker="o", label=label)
            axes[1].plot(n, [r["ttft_p50_ms"] for r in rows], marker="o", label=f"{label} p50")
            axes[1].plot(
                n, [r["ttft_p95_ms"] for r in rows], marker="x", ls="--", label=f"{label} p95"
            )
    for ax, title, unit in (
        (axes[0], "aggregate decode throughput", "tokens/s"),
        (axes[1], "time to first token", "ms"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent streams")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(
        f"Gemma 3 270M Q4_K_M, {results['threads']} threads, {results['machine']}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parts", default="single,sweep,overload")
    parser.add_argument("--levels", default="1,2,4,8,16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "inference_bench.json")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    model = resolve_model_path(None, Path.home() / ".cache" / "raildebug" / "models")
    results: dict[str, Any] = {
        "model": model.name,
        "threads": args.threads,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_at_start": os.getloadavg(),
        "new_tokens": NEW_TOKENS,
    }
    if "single" in parts:
        s = single(model, args.threads, args.repeats)
        raw, ours = s["llama_cpp_python"], s["raildebug"]
        s["ratio_tok_s"] = ours["decode_tok_s"] / raw["decode_tok_s"]
        s["extra_ttft_ms"] = ours["ttft_ms"] - raw["ttft_ms"]
        results["single"] = s
    if "sweep" in parts:
        levels = [int(n) for n in args.levels.split(",")]
        results["sweep"] = sweep(model, args.threads, levels)
        by_n = {r["streams"]: r for r in results["sweep"]["raildebug"]}
        theirs = {r["streams"]: r for r in results["sweep"]["llama_server"]}
        if 8 in by_n and 1 in by_n:
            results["targets"] = {
                "vs_own_single_x": by_n[8]["aggregate_tok_s"] / by_n[1]["aggregate_tok_s"],
                "vs_llama_server_x": by_n[8]["aggregate_tok_s"] / theirs[8]["aggregate_tok_s"],
            }
    if "overload" in parts:
        results["overload"] = overload(model, args.threads)
    results["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=lambda o: asdict(o)))
    if "sweep" in parts:
        plot(results, args.out.with_suffix(".png"))
    report(results)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
