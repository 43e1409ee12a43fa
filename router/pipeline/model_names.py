"""What the body's ``model`` asks for: ``auto``, ``auto:<mode>``, a route or an alias — on every door."""

from __future__ import annotations

from router import errors, taxonomy
from router.policy.loader import LoadedPolicy
from router.protocol import RouterControls


def resolve_model(loaded: LoadedPolicy, model: str, controls: RouterControls) -> tuple[str | None, str | None]:
    """(forced mode, direct route) for ``model``; ModelNotFound when it names nothing servable."""
    if model == "auto":
        return controls.mode, None
    if model.startswith("auto:"):
        mode = model[5:]
        if mode not in taxonomy.MODES:
            raise errors.ModelNotFound(
                f"The model '{model}' does not exist; use auto or auto:<{'|'.join(taxonomy.MODES)}>.",
                param="model")
        if controls.mode is not None and controls.mode != mode:
            raise errors.InvalidRequest(f"model '{model}' and the requested mode '{controls.mode}' disagree.",
                                        param="model")
        return mode, None
    route = loaded.policy.resolve_model(model)
    if route is None:
        known = ", ".join(["auto", *(f"auto:{m}" for m in taxonomy.MODES), *loaded.policy.routes,
                           *([taxonomy.SWARM_ROUTE] if loaded.policy.swarm.enabled else []),
                           *loaded.policy.listed_aliases])
        raise errors.ModelNotFound(f"The model '{model}' does not exist or its backend is disabled. "
                                   f"Available: {known}.", param="model")
    return None, route
