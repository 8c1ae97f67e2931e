"""`raildebug ask "question"`: stream an answer to the terminal, then its sources and timings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import grpc

from raildebug.grpc_runtime.channels import open_channel
from raildebug.settings import ORCHESTRATOR_PORT
from raildebug.v1 import orchestrator_pb2, orchestrator_pb2_grpc


def register(commands: Any) -> None:
    parser = commands.add_parser("ask", help="ask a debugging question and stream the answer")
    parser.add_argument("question")
    parser.add_argument("--code-file", type=Path, help="file with the code under investigation")
    parser.add_argument("--log-file", type=Path, help="file with the error log")
    parser.add_argument("--k", type=int, default=0, help="passages to retrieve (default 5)")
    parser.add_argument("--max-tokens", type=int, default=0, help="answer length limit")
    parser.add_argument("--kind", action="append", default=[], help="only passages of this kind")
    parser.add_argument("--source-prefix", default="", help="only sources under this path")
    parser.add_argument("--client-id", default="raildebug-cli")
    parser.add_argument("--timeout", type=float, default=180.0, help="deadline in seconds")
    parser.add_argument("--orchestrator", default=f"127.0.0.1:{ORCHESTRATOR_PORT}")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    request = orchestrator_pb2.DebugRequest(
        question=args.question,
        code_snippet=args.code_file.read_text() if args.code_file else "",
        error_log=args.log_file.read_text() if args.log_file else "",
        k=args.k,
        max_tokens=args.max_tokens,
        client_id=args.client_id,
    )
    request.filter.kinds.extend(args.kind)
    request.filter.source_prefix = args.source_prefix
    sources: list[orchestrator_pb2.ContextPassage] = []
    with open_channel(args.orchestrator) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        try:
            for event in stub.Debug(request, timeout=args.timeout):
                kind = event.WhichOneof("event")
                if kind == "context":
                    sources = list(event.context.passages)
                    print(
                        f"Retrieved {len(sources)} passages in "
                        f"{event.context.retrieval_ms:.0f} ms\n",
                        file=sys.stderr,
                    )
                elif kind == "delta":
                    sys.stdout.write(event.delta)
                    sys.stdout.flush()
                else:
                    _show_summary(event.summary, sources)
        except grpc.RpcError as error:
            print(f"\nerror: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    return 0


def _show_summary(
    summary: orchestrator_pb2.DebugSummary, sources: list[orchestrator_pb2.ContextPassage]
) -> None:
    cited = set(summary.cited_passage_ids)
    print("\n\nSources (* cited):")
    for p in sources:
        mark = "*" if p.id in cited else " "
        title = f" ({p.title})" if p.title else ""
        print(
            f" {mark}{p.label} {p.source}:{p.line_start}-{p.line_end}{title}  score {p.score:.3f}"
        )
    t = summary.generation_timings
    print(
        f"\nmodel {summary.model} · prompt {summary.prompt_version}"
        f" · finish {summary.finish_reason}"
        f"\ntokens: prompt {summary.usage.prompt_tokens}, answer {summary.usage.completion_tokens}"
        f"\ntime: first token {summary.time_to_first_token_ms:.0f} ms, total "
        f"{summary.latency_ms:.0f} ms (queue {t.queue_ms:.0f}, prefill {t.prefill_ms:.0f}, "
        f"decode {t.decode_ms:.0f})"
        f"\nrequest id {summary.request_id}"
    )
    if summary.degraded:
        print(f"degraded: {summary.degraded_reason}")
