"""Prompt A/B tests: which labelled prompt variant a caller is served.

Assignment hashes the session (or client) id with the experiment name, so a caller stays on
its variant across requests and replicas, and different experiments split independently.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class PromptExperiment:
    control_label: str
    treatment_label: str = ""  # empty: no experiment, everyone gets control_label
    treatment_share: float = 0.5
    name: str = "prompt-ab"

    def __post_init__(self) -> None:
        if not 0.0 <= self.treatment_share <= 1.0:
            raise ValueError(f"treatment_share must be in [0, 1], got {self.treatment_share}")

    def assign(self, subject: str) -> str:
        """The label to serve `subject` (a session or client id)."""
        if not self.treatment_label:
            return self.control_label
        digest = hashlib.sha256(f"{self.name}\0{subject}".encode()).digest()
        position = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
        return self.treatment_label if position < self.treatment_share else self.control_label
