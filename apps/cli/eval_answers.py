"""`raildebug eval answers`: ask judged question sets through the real services and score them.

Each configuration is a model of the catalog served by our inference service with a prompt
(a label such as `production`, or a pinned `@N` version). Per question set the retriever is
started once over its corpus; per model the inference service is started once; per prompt an
orchestrator. Every question goes through the Debug RPC, as a caller's would, one at a time so
that time to first token is not inflated by the benchmark's own queueing. Scores come from
training/answer_scoring.py; the table, `--json` and `--plot` carry the same numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc
from tqdm import tqdm

from apps.cli.health import wait_until_serving
from raildebug.errors import RailDebugError
from raildebug.grpc_runtime.channels import open_channel
from raildebug.settings import InferenceSettings
from raildebug.v1 import orchestrator_pb2, orchestrator_pb2_grpc, retriever_pb2_grpc
from services.retriever.evaluation import load_corpus
from services.retriever.wire import document_to_wire
from training.answer_scoring import (
    AnswerQuestion,
    AnswerRecord,
    CitedPassage,
    load_questions,
    summarise,
)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIGS = "gemma-3-270m=@1,qwen2.5-coder-0.5b-instruct-q4_0=@3"
QUALITY = ("citation_rate", "citation_precision", "nugget_recall", "abstention")


@dataclass(frozen=True)
class QuestionSet:
    """Judged questions over the corpus they were written from."""

    name: str
    questions: Path
    corpus: Path
    exclude: tuple[str, ...] = ()


SETS = {
    "sample": QuestionSet(
        "sample",
        REPO / "data/eval/answers-sample.jsonl",
        REPO / "data/sample-corpus",
        ("README.md", "QUESTIONS.md"),  # they name the answers
    ),
    "shared": QuestionSet(
        "shared",
        REPO / "data/eval/answers-shared.jsonl",
        REPO.parent / "shared/eval-corpus/passages.jsonl",
    ),
}


@dataclass(frozen=True)
class ServedConfig:
    model: str
    prompt: str  # a label or @N

    @property
    def name(self) -> str:
        return f"{self.model} {self.prompt}"


def register(targets: Any) -> None:
    parser = targets.add_parser(
        "answers",
        help="ask judged questions through the real services; score citations, nuggets, "
        "abstention and latency per model and prompt",
    )
    parser.add_argument(
        "--sets",
        default="sample,shared",
        help=f"comma-separated question sets: {', '.join(SETS)} (default: %(default)s)",
    )
    parser.add_argument(
        "--models",
        default=DEFAULT_CONFIGS,
        help="comma-separated catalog models, each optionally =PROMPT (a label or @N) "
        "to pin its prompt; models without one get every --prompts entry "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--prompts",
        default="production",
        help="comma-separated prompt labels or @N versions for models given without one",
    )
    parser.add_argument("--k", type=int, default=5, help="passages retrieved per question")
    parser.add_argument("--max-tokens", type=int, default=256, help="answer length limit")
    parser.add_argument("--limit", type=int, default=0, help="first N questions of each set")
    parser.add_argument("--threads", type=int, default=0, help="inference threads (0: auto)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per question")
    parser.add_argument("--json", type=Path, default=None, help="write results (and answers)")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG comparison")
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="stores, registry and logs (default: scratch)"
    )
    parser.set_defaults(run=run)


def parse_configs(models: str, prompts: str) -> list[ServedConfig]:
    labels = [p.strip() for p in prompts.split(",") if p.strip()]
    configs: list[ServedConfig] = []
    for entry in filter(None, (m.strip() for m in models.split(","))):
        model, _, pinned = entry.partition("=")
        for prompt in [pinned] if pinned else labels:
            configs.append(ServedConfig(model.strip(), prompt.strip()))
    if not configs:
        raise SystemExit("--models names no model")
    return configs


def run(args: argparse.Namespace) -> int:
    configs = parse_configs(args.models, args.prompts)
    names = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [n for n in names if n not in SETS]
    if unknown:
        raise SystemExit(f"unknown question set(s) {unknown}; known: {list(SETS)}")
    try:
        sets = {n: _limited(load_questions(SETS[n].questions), args.limit) for n in names}
    except RailDebugError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        work = args.work_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        results = {
            name: _run_set(SETS[name], questions, configs, args, work / name)
            for name, questions in sets.items()
        }
    print(format_table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if args.plot:
        plot(results, args.plot)
    return 0


def _limited(questions: list[AnswerQuestion], limit: int) -> list[AnswerQuestion]:
    return questions[:limit] if limit > 0 else questions


def _run_set(
    question_set: QuestionSet,
    questions: list[AnswerQuestion],
    configs: Sequence[ServedConfig],
    args: argparse.Namespace,
    work: Path,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with LocalServices(work) as services:
        retriever = services.start("retriever", {})
        _ingest(retriever, question_set)
        for model in dict.fromkeys(c.model for c in configs):
            threads = {"RAILDEBUG_INFERENCE_N_THREADS": str(args.threads)} if args.threads else {}
            inference = services.start("inference", {"RAILDEBUG_INFERENCE_MODEL": model, **threads})
            for config in (c for c in configs if c.model == model):
                orchestrator = services.start(
                    "orchestrator",
                    {
                        "RAILDEBUG_ORCHESTRATOR_RETRIEVER_ADDRESS": retriever,
                        "RAILDEBUG_ORCHESTRATOR_INFERENCE_ADDRESS": inference,
                        "RAILDEBUG_ORCHESTRATOR_PROMPT_LABEL": config.prompt,
                        "RAILDEBUG_ORCHESTRATOR_CACHE_BACKEND": "none",
                    },
                )
                records = [
                    ask(orchestrator, q, args.k, args.max_tokens, args.timeout)
                    for q in tqdm(
                        questions, desc=f"{question_set.name}: {config.name}", file=sys.stderr
                    )
                ]
                summary = summarise(questions, records)
                results[config.name] = {
                    "summary": asdict(summary),
                    "answers": [asdict(r) for r in records],
                }
                services.stop("orchestrator")
            services.stop("inference")
    return results


def ask(
    address: str, question: AnswerQuestion, k: int, max_tokens: int, timeout_s: float
) -> AnswerRecord:
    request = orchestrator_pb2.DebugRequest(
        question=question.question,
        code_snippet=question.code_snippet,
        error_log=question.error_log,
        k=k,
        max_tokens=max_tokens,
        client_id="raildebug-eval",
    )
    passages: tuple[CitedPassage, ...] = ()
    parts: list[str] = []
    with open_channel(address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        try:
            for event in stub.Debug(request, timeout=timeout_s):
                kind = event.WhichOneof("event")
                if kind == "context":
                    passages = tuple(
                        CitedPassage(p.label, p.source) for p in event.context.passages
                    )
                elif kind == "delta":
                    parts.append(event.delta)
                else:
                    s = event.summary
                    return AnswerRecord(
                        qid=question.qid,
                        answer="".join(parts),
                        passages=passages,
                        time_to_first_token_ms=s.time_to_first_token_ms,
                        latency_ms=s.latency_ms,
                        prompt_tokens=s.usage.prompt_tokens,
                        cached_prompt_tokens=s.usage.cached_prompt_tokens,
                        completion_tokens=s.usage.completion_tokens,
                        prefill_ms=s.generation_timings.prefill_ms,
                        decode_ms=s.generation_timings.decode_ms,
                        model=s.model,
                        prompt_version=s.prompt_version,
                    )
        except grpc.RpcError as error:
            message = f"{error.code().name}: {error.details()}"
            return _failed_record(question.qid, "".join(parts), passages, message)
    return _failed_record(question.qid, "".join(parts), passages, "stream ended without summary")


def _failed_record(
    qid: str, answer: str, passages: tuple[CitedPassage, ...], error: str
) -> AnswerRecord:
    return AnswerRecord(qid, answer, passages, 0.0, 0.0, 0, 0, 0, 0.0, 0.0, "", "", error)


def _ingest(address: str, question_set: QuestionSet) -> None:
    documents = load_corpus(question_set.corpus, (), question_set.exclude)
    with open_channel(address) as channel:
        stub = retriever_pb2_grpc.RetrieverStub(channel)
        documents_iter = (
            document_to_wire(d)
            for d in tqdm(documents, desc=f"ingesting {question_set.name}", file=sys.stderr)
        )
        summary = stub.Ingest(documents_iter, timeout=3600)
    if summary.errors:
        failed = ", ".join(f"{e.source}: {e.message}" for e in summary.errors[:3])
        raise SystemExit(f"ingest of {question_set.corpus} failed for some documents: {failed}")


class LocalServices:
    """Our services as child processes on free loopback ports, sharing one data directory."""

    def __init__(self, work: Path, ready_timeout_s: float = 600.0) -> None:
        self._work = work
        self._ready_timeout_s = ready_timeout_s
        self._running: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> LocalServices:
        (self._work / "logs").mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        for service in list(self._running):
            self.stop(service)

    def start(self, service: str, overrides: dict[str, str]) -> str:
        """Start `service` and wait until it serves; returns its address."""
        self.stop(service)
        port = _free_port()
        prefix = f"RAILDEBUG_{service.upper()}_"
        env = {
            **os.environ,
            # the caller's model cache: models are not fetched again into the scratch directory
            "RAILDEBUG_INFERENCE_MODEL_CACHE_DIR": str(InferenceSettings().model_cache_dir),
            "RAILDEBUG_DATA_DIR": str(self._work),
            prefix + "HOST": "127.0.0.1",
            prefix + "PORT": str(port),
            **overrides,
        }
        log = (self._work / "logs" / f"{service}.log").open("ab")
        self._running[service] = subprocess.Popen(
            [sys.executable, "-m", "apps.cli.main", "serve", service],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        address = f"127.0.0.1:{port}"
        status = wait_until_serving(address, self._ready_timeout_s)
        if status != "SERVING":
            self.stop(service)
            raise SystemExit(f"{service} did not become ready ({status}); see {log.name}")
        return address

    def stop(self, service: str) -> None:
        process = self._running.pop(service, None)
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def format_table(results: dict[str, dict[str, Any]]) -> str:
    columns = (
        ("cite", "citation_rate", "{:.2f}"),
        ("prec", "citation_precision", "{:.2f}"),
        ("nugget", "nugget_recall", "{:.2f}"),
        ("abstain", "abstention", "{:.2f}"),
        ("f.abst", "false_abstention", "{:.2f}"),
        ("ttft50", "ttft_p50_ms", "{:.0f}"),
        ("ttft95", "ttft_p95_ms", "{:.0f}"),
        ("lat50", "latency_p50_ms", "{:.0f}"),
        ("lat95", "latency_p95_ms", "{:.0f}"),
        ("ptok50", "prompt_tokens_p50", "{:.0f}"),
        ("ctok", "completion_tokens_mean", "{:.0f}"),
        ("pre/s", "prefill_tokens_per_s", "{:.0f}"),
        ("dec/s", "decode_tokens_per_s", "{:.1f}"),
        ("err", "errors", "{:d}"),
    )
    lines: list[str] = []
    for set_name, configs in results.items():
        width = max([len(c) for c in configs] + [13])
        first = next(iter(configs.values()))["summary"] if configs else {}
        lines.append(
            f"\n{set_name}: {first.get('questions', 0)} questions "
            f"({first.get('unanswerable', 0)} unanswerable); times in ms"
        )
        header = f"{'configuration':<{width}} " + " ".join(f"{c[0]:>7}" for c in columns)
        lines += [header, "-" * len(header)]
        for name, result in configs.items():
            summary = result["summary"]
            cells = " ".join(f"{fmt.format(summary[key]):>7}" for _, key, fmt in columns)
            lines.append(f"{name:<{width}} {cells}")
    return "\n".join(lines).lstrip("\n")


def plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(results)
    figure, axes = plt.subplots(len(sets), 2, figsize=(12, 3.6 * len(sets)), squeeze=False)
    for row, set_name in enumerate(sets):
        configs = results[set_name]
        quality, timing = axes[row]
        width = 0.8 / max(len(configs), 1)
        for i, (name, result) in enumerate(configs.items()):
            s = result["summary"]
            xs = [x + i * width for x in range(len(QUALITY))]
            quality.bar(xs, [s[m] for m in QUALITY], width, label=name)
            timing.bar(
                [x + i * width for x in range(2)],
                [s["ttft_p50_ms"] / 1000, s["latency_p50_ms"] / 1000],
                width,
                label=name,
            )
        quality.set_xticks([x + 0.4 - width / 2 for x in range(len(QUALITY))], QUALITY)
        quality.set_ylim(0, 1)
        quality.set_title(f"{set_name}: answer quality")
        timing.set_xticks([x + 0.4 - width / 2 for x in range(2)], ["TTFT p50", "latency p50"])
        timing.set_ylabel("seconds")
        timing.set_title(f"{set_name}: time (2 cores)")
        quality.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
