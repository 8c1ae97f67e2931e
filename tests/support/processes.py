"""Handles on the services the tests run as separate processes (`raildebug serve NAME`)."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import grpc


@dataclass
class ServiceProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    channels: list[grpc.Channel] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def channel(self) -> grpc.Channel:
        from raildebug.grpc_runtime.channels import open_channel

        channel = open_channel(self.address)
        self.channels.append(channel)
        return channel

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records

    def stop(self, timeout_s: float = 60.0) -> int:
        for channel in self.channels:
            channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


# The `start_service` fixture: start(name, wait=True, **env_overrides) -> ServiceProcess.
StartService = Callable[..., ServiceProcess]


@dataclass
class Stack:
    retriever: ServiceProcess
    inference: ServiceProcess
    orchestrator: ServiceProcess
