"""Task classifier: labels each chat request with one of the task types (see classifiers/README.md)."""

from router.classifier.artifact import ClassifierArtifactError
from router.classifier.model import Classification, TaskClassifier

__all__ = ["Classification", "ClassifierArtifactError", "TaskClassifier"]
