"""Which passages an answer cites: labels like [1], [1][3] or [1, 2] in the answer text."""

from __future__ import annotations

import re

# One bracket holding one or more small numbers separated by commas: [2], [1, 3], [1,2,4].
_CITATION = re.compile(r"\[(\d{1,2}(?:\s*,\s*\d{1,2})*)\]")


def cited_labels(answer: str) -> list[int]:
    """Passage numbers in order of first citation, each once."""
    labels: list[int] = []
    for match in _CITATION.finditer(answer):
        for number in match.group(1).split(","):
            label = int(number)
            if label not in labels:
                labels.append(label)
    return labels
