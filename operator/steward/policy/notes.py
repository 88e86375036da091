"""What a decision tells people: the Kubernetes Event it records, with its reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Note:
    """One Event: ``reason`` is a CamelCase word, ``message`` the numbers behind the decision."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str
