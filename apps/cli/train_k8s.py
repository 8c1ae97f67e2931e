"""`raildebug train submit` and `raildebug train status`: training runs as Kubernetes Jobs.

apps/cli/train.py calls `add_kubernetes_commands` on its subcommand group; the Job itself is
rendered and submitted by training/k8s_job.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from raildebug.errors import RailDebugError


def add_kubernetes_commands(train_subparsers: Any) -> None:
    submit = train_subparsers.add_parser(
        "submit", help="run a training config as a Kubernetes Indexed Job (FSDP under torchrun)"
    )
    submit.add_argument("--config", type=Path, required=True, help="run YAML")
    submit.add_argument("--nodes", type=int, help="pods of the Job (default: distributed.nodes)")
    submit.add_argument(
        "--gpus-per-node",
        type=int,
        help="GPUs and ranks per pod (default: distributed.gpus_per_node)",
    )
    submit.add_argument(
        "--dry-run", action="store_true", help="print the manifests as YAML; submit nothing"
    )
    submit.set_defaults(run=run_submit)

    status = train_subparsers.add_parser("status", help="show a training Job and its ranks")
    status.add_argument("name", help="the run name (run.name in its config)")
    status.add_argument("--namespace", default="raildebug", help="default: raildebug")
    status.add_argument("--follow", action="store_true", help="keep reporting until it finishes")
    status.add_argument("--interval", type=float, default=5.0, help="seconds between polls")
    status.set_defaults(run=run_status)


def run_submit(args: argparse.Namespace) -> int:
    from training.config import load_training_config
    from training.k8s_job import (
        connect,
        manifests_to_yaml,
        render_training_job,
        submit_training_job,
    )

    try:
        config = load_training_config(args.config)
        manifests = render_training_job(config, nodes=args.nodes, gpus_per_node=args.gpus_per_node)
        if args.dry_run:
            sys.stdout.write(manifests_to_yaml(manifests))
            return 0
        submit_training_job(manifests, connect())
    except RailDebugError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    job = manifests.job.metadata
    print(
        f"submitted job {job.namespace}/{job.name} "
        f"({manifests.job.spec.parallelism} pods); follow it with "
        f"`raildebug train status {job.name} --namespace {job.namespace} --follow`"
    )
    return 0


def run_status(args: argparse.Namespace) -> int:
    from training.k8s_job import (
        TrainingJobStatus,
        connect,
        follow_training_job,
        format_status,
        read_training_status,
    )

    def show(status: TrainingJobStatus) -> None:
        print(format_status(status), flush=True)

    try:
        api = connect()
        if args.follow:
            final = follow_training_job(args.name, args.namespace, api, show, args.interval)
        else:
            final = read_training_status(args.name, args.namespace, api)
            show(final)
    except RailDebugError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 1 if final.state == "Failed" else 0
