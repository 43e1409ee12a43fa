"""A reload applies only a complete, stable file; what was applied or refused is visible; no secret
is printed on the way."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
import yaml

from router.policy.store import PolicyStore
from router.settings import PACKAGED_POLICY
from tests.conftest import Gateway, default_policy
from tests.support.routing import fast_overrides

ENV = {"KIMI_API_BASE": "http://kimi.invalid/v1", "OPENAI_API_KEY": "sk-test-0123456789abcdef",
       "ANTHROPIC_API_KEY": "sk-ant-0123456789"}
TEXT = PACKAGED_POLICY.read_text()


def _store(tmp_path: Path, text: str = TEXT) -> PolicyStore:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return PolicyStore(path, env=ENV)


def _truncations() -> list[int]:
    lines = TEXT.splitlines(keepends=True)
    return list(range(1, len(lines)))


def test_no_truncation_of_the_default_policy_is_ever_applied(tmp_path: Path) -> None:
    lines = TEXT.splitlines(keepends=True)
    store = _store(tmp_path)
    version = store.current.policy.version
    applied = []
    for cut in _truncations():
        store.path.write_text("".join(lines[:cut]))
        for _ in range(3):  # however long it stays like that
            if store.reload_if_changed():
                applied.append(cut)
        assert store.current.policy.version == version
    assert applied == []
    # A later truncation followed by the complete file: the complete one is applied.
    store.path.write_text(TEXT.replace('version: "2026-11-29"', 'version: "next"'))
    assert not store.reload_if_changed()  # first look: maybe still being written
    assert store.reload_if_changed()  # unchanged on the second look: applied
    assert store.current.policy.version == "next"


def test_a_file_still_changing_waits_for_a_stable_look(tmp_path: Path) -> None:
    store = _store(tmp_path)
    for version in ("a", "b", "c"):
        store.path.write_text(TEXT.replace('version: "2026-11-29"', f'version: "{version}"'))
        assert not store.reload_if_changed()
    assert store.reload_if_changed() and store.current.policy.version == "c"
    assert store.last_reload is not None and store.last_reload.result == "applied"


def test_sighup_applies_at_once(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.path.write_text(TEXT.replace('version: "2026-11-29"', 'version: "now"'))
    assert store.reload_if_changed(force=True) and store.current.policy.version == "now"


def test_a_reload_error_never_prints_an_interpolated_secret(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="router.policy")
    store = _store(tmp_path)
    store.path.write_text(TEXT.replace("max_concurrency: 128", "max_concurrency: ${OPENAI_API_KEY}", 1))
    assert not store.reload_if_changed(force=True)
    assert "policy reload rejected" in caplog.text
    assert ENV["OPENAI_API_KEY"] not in caplog.text
    assert "<${OPENAI_API_KEY}>" in caplog.text
    assert store.last_reload is not None
    assert not any(ENV["OPENAI_API_KEY"] in p for p in store.last_reload.problems)


def test_status_and_metrics_follow_each_reload(gateway_factory: pytest.FixtureRequest, tmp_path: Path) -> None:
    gw: Gateway = gateway_factory(default_policy(**fast_overrides(version="one")),  # type: ignore[operator]
                                  settings={"policy_reload_interval_s": 0})
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        assert 'router_policy_info{name="default",version="one"} 1.0' in http.get("/metrics").text
        gw.write_policy(default_policy(**fast_overrides(version="two")))
        assert gw.services.store.reload_if_changed(force=True)
        metrics = http.get("/metrics").text
        assert 'router_policy_info{name="default",version="two"} 1.0' in metrics
        assert 'version="one"' not in metrics
        status = http.get("/v1/router/status").json()
        assert status["policy"]["version"] == "two" and status["last_reload"]["result"] == "applied"
        broken = default_policy(**fast_overrides(version="three"))
        del broken["swarm"]
        gw.policy_path.write_text(yaml.safe_dump(broken, sort_keys=False))
        assert not gw.services.store.reload_if_changed(force=True)
        status = http.get("/v1/router/status").json()
        assert status["policy"]["version"] == "two"
        assert status["last_reload"]["result"] == "rejected"
        assert any(p.startswith("swarm:") for p in status["last_reload"]["problems"])
