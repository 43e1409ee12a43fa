"""The import rule: lower layers never import higher ones (``router/layers.py`` defines the layers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from router import layers


def test_no_upward_imports_and_every_module_has_a_layer() -> None:
    assert layers.upward_imports() == []


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: a foundation module importing the pipeline is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from router.pipeline import Pipeline\nfrom router import errors\n")
    found = layers.imports_of(bad, set(layers.all_modules()))
    assert found == {"router.pipeline", "router.errors"}
    errors_layer, pipeline_layer = layers.layer_of("router.errors"), layers.layer_of("router.pipeline.core")
    assert errors_layer is not None and pipeline_layer is not None and errors_layer < pipeline_layer
    assert layers.layer_of("router.engine.explain") != layers.layer_of("router.engine.decide")  # longest prefix


def test_type_checking_imports_count(tmp_path: Path) -> None:
    hidden = tmp_path / "hidden.py"
    hidden.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from router.services import Services\n")
    assert layers.imports_of(hidden, set(layers.all_modules())) == {"router.services"}


def test_the_layer_graph_prints() -> None:
    out = subprocess.run([sys.executable, "-m", "router.layers"], capture_output=True, text=True, check=True).stdout
    assert "exchange" in out and "pipeline" in out and "UPWARD" not in out
