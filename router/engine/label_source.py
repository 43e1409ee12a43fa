"""Which path labelled a request: ``model`` | ``rule`` | ``cascade`` | ``header``.

The label's origin is already in ``Routed.rule`` (None when the learned model decided, the rule's
sentence otherwise), so the source is read from it rather than stored twice: the client's
``X-Router-Task-Type`` (or body ``router.task_type``) is ``header``, a rule starting with
``cascade:`` is the cheap route's answer (``router.pipeline.cascade``), any other rule (structural
rules and the confidence floor) is ``rule``. Four values: a bounded metric label.
"""

from __future__ import annotations

from typing import Final

HEADER_RULE: Final = "X-Router-Task-Type"  # the rule text of a client-forced task type
CASCADE_PREFIX: Final = "cascade:"
LABEL_SOURCES: Final = ("model", "rule", "cascade", "header")


def label_source(rule: str | None) -> str:
    if rule is None:
        return "model"
    if rule == HEADER_RULE:
        return "header"
    if rule.startswith(CASCADE_PREFIX):
        return "cascade"
    return "rule"


def model_labelled(rule: str | None) -> bool:
    """The learned model's probabilities chose (or were floored into) the label."""
    return rule is None or rule.startswith("floor:")
