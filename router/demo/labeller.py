"""The demo's answer to the gateway's cascade call (``router.pipeline.cascade``): one label.

A cascade call is recognised by its system prompt (``model-router labeller.`` and a ``Labels:``
list, one ``- name: meaning`` line each). The reply is deterministic, so tests can choose it from the
prompt: the first offered label named as a word in the request text (``long_context`` also as
"long context"), else ``unsure`` — which the gateway cannot parse, so it keeps the model's label.
"""

from __future__ import annotations

import re

MARKER = "model-router labeller."  # the same words as router.pipeline.cascade.MARKER
UNSURE = "unsure"
_LABEL_LINE = re.compile(r"^- ([a-z_]+):", re.MULTILINE)


def is_labeller_call(system: str) -> bool:
    return system.startswith(MARKER)


def offered_labels(system: str) -> list[str]:
    return _LABEL_LINE.findall(system)


def label_reply(system: str, request_text: str) -> str:
    text = request_text.lower()
    for label in offered_labels(system):
        spelled = label.replace("_", "[ _]")
        if re.search(rf"\b{spelled}\b", text):
            return label
    return UNSURE
