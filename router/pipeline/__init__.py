"""The request pipeline: prepare (validate, classify, decide) → carry out (dispatch | swarm) → account."""

from router.pipeline.core import Classifier, Pipeline, PolicySource

__all__ = ["Classifier", "Pipeline", "PolicySource"]
