"""`raildebug ingest PATH…`: read files and stream them to the retriever's Ingest RPC."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from tqdm import tqdm

from raildebug.errors import RailDebugError
from raildebug.grpc_runtime.channels import open_channel
from raildebug.settings import RETRIEVER_PORT
from raildebug.v1 import retriever_pb2, retriever_pb2_grpc
from services.retriever.sources import iter_source_files, read_source_document
from services.retriever.wire import document_to_wire


def register(commands: Any) -> None:
    parser = commands.add_parser("ingest", help="ingest documentation and source files")
    parser.add_argument("paths", nargs="+", type=Path, help="files or folders to ingest")
    parser.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="only files matching this glob (repeatable)",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip files matching this glob (repeatable)",
    )
    parser.add_argument(
        "--meta",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="metadata stored with every chunk, e.g. subsystem=points",
    )
    parser.add_argument("--retriever", default=f"127.0.0.1:{RETRIEVER_PORT}")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    metadata = _parse_metadata(args.meta)
    files = [pair for root in args.paths for pair in _files_under(root, args)]
    local_errors: list[str] = []
    progress = tqdm(total=len(files), unit="doc", desc="ingesting", file=sys.stderr)

    def documents() -> Iterator[retriever_pb2.IngestDocument]:
        for root, path in files:
            try:
                yield document_to_wire(read_source_document(root, path, metadata))
            except RailDebugError as error:
                local_errors.append(str(error))
            progress.update(1)

    with open_channel(args.retriever) as channel:
        stub = retriever_pb2_grpc.RetrieverStub(channel)
        try:
            summary = stub.Ingest(documents(), timeout=args.timeout)
        except grpc.RpcError as error:
            progress.close()
            print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    progress.close()
    print(
        f"{summary.documents_received} documents: {summary.documents_written} written "
        f"({summary.chunks_written} chunks), {summary.documents_unchanged} unchanged, "
        f"{len(summary.duplicates)} duplicate, {len(summary.errors) + len(local_errors)} failed"
    )
    for duplicate in summary.duplicates:
        print(f"  {duplicate.source}: same content as {duplicate.stored_as}, stored once")
    for message in local_errors:
        print(f"  {message}", file=sys.stderr)
    for failure in summary.errors:
        print(f"  {failure.source}: {failure.message}", file=sys.stderr)
    return 0 if not (summary.errors or local_errors) else 2


def _files_under(root: Path, args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """(ingest root, file) pairs; a file named directly is its own folder's only document."""
    if root.is_file():
        return [(root.parent, root)]
    return [(root, path) for _, path in iter_source_files(root, args.include, args.exclude)]


def _parse_metadata(pairs: list[str]) -> dict[str, str]:
    metadata: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--meta expects KEY=VALUE, got {pair!r}")
        metadata[key.strip()] = value.strip()
    return metadata
