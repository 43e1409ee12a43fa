"""The closed sets every part of the router agrees on: task types and modes.

They are defined once, in ``classifiers/labels.yaml``; this module reads that file at import time
(a local file, once) so labels cannot drift between the classifier, the policy and the metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import yaml

_LABELS_FILE: Final = Path(__file__).resolve().parent.parent / "classifiers" / "labels.yaml"


def _load() -> tuple[tuple[str, ...], tuple[str, ...]]:
    data = yaml.safe_load(_LABELS_FILE.read_text(encoding="utf-8"))
    return tuple(data["task_types"]), tuple(data["modes"])


TASK_TYPES, MODES = _load()
# Vendor backends have a single way of working; it is named like a mode so routes read `gpt:default`.
DEFAULT_MODE: Final = "default"
SWARM_ROUTE: Final = "swarm"
# The front doors a request can come through (the ``api`` label): chat completions, Anthropic's
# Messages, OpenAI's Responses.
APIS: Final = ("chat", "messages", "responses")
