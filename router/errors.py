"""The error tree, and its rendering in OpenAI's shape ``{"error": {message, type, param, code}}``.

    RouterError
    ├── InvalidRequest          400 invalid_request_error
    │   └── RouteInfeasible     400 invalid_request_error / route_infeasible
    ├── AuthenticationFailed    401 authentication_error
    ├── PermissionDenied        403 permission_error / permission_denied
    ├── ModelNotFound           404 invalid_request_error / model_not_found
    ├── MethodNotAllowed        405 invalid_request_error
    ├── RequestTooLarge         413 invalid_request_error / request_too_large
    ├── RateLimited             429 rate_limit_error / rate_limit_exceeded (+ retry-after)
    ├── QuotaExceeded           429 insufficient_quota / insufficient_quota
    ├── UpstreamFailed          502 upstream_error
    ├── UpstreamTimedOut        504 upstream_timeout
    └── Unavailable             503 service_unavailable
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson


class RouterError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    code: ClassVar[str | None] = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.instance_code = code or self.code
        self.headers = headers or {}
        # Filled by the dispatcher when every attempt failed, for the request's metrics and log line.
        self.failed_attempts = 0
        self.upstream_s = 0.0

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.instance_code}}

    def body_bytes(self) -> bytes:
        return orjson.dumps(self.body())


class InvalidRequest(RouterError):
    status = 400
    type = "invalid_request_error"


class RouteInfeasible(InvalidRequest):
    code = "route_infeasible"


class AuthenticationFailed(RouterError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class ModelNotFound(RouterError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class MethodNotAllowed(RouterError):
    status = 405
    type = "invalid_request_error"


class RequestTooLarge(RouterError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(RouterError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message, headers={"retry-after": str(max(1, round(retry_after_s)))})
        self.retry_after_s = retry_after_s


class UpstreamFailed(RouterError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"


class UpstreamTimedOut(RouterError):
    status = 504
    type = "upstream_timeout"
    code = "upstream_timeout"


class Unavailable(RouterError):
    status = 503
    type = "service_unavailable"
    code = "no_backend_available"


# --- tenants (issue 14) ---------------------------------------------------------------------------
class PermissionDenied(RouterError):
    """The key is valid but may not use this model, route or mode."""

    status = 403
    type = "permission_error"
    code = "permission_denied"


class QuotaExceeded(RouterError):
    """The tenant's (or key's) spend budget is used up: OpenAI's ``insufficient_quota``."""

    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"
