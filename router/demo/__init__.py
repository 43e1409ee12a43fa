"""Simulated upstreams (vLLM/SGLang-flavoured OpenAI API for Kimi K2.5, OpenAI, Anthropic Messages) for
`model-router serve --demo`, the tests and the benchmarks. See README.md in this folder.
"""

from router.demo.behavior import SERVER_KINDS, DemoBehavior, ServerKind
from router.demo.runner import DEFAULT_SPECS, DemoUpstreams, base_url_for
from router.demo.server_state import DEFAULT_MODELS, DemoServerSpec

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_SPECS",
    "SERVER_KINDS",
    "DemoBehavior",
    "DemoServerSpec",
    "DemoUpstreams",
    "ServerKind",
    "base_url_for",
]
