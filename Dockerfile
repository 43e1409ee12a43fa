# syntax=docker/dockerfile:1
# model-router gateway image. Not built in CI (no Docker engine there): tests/test_helm.py checks its
# structure. Build: docker build -t model-router:dev .
#
# Two stages: the builder installs the exact, hash-checked lock file into a venv; the final image is
# python:3.11-slim plus that venv, so no compiler, pip cache or source tree ships.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# The venv gets no pip of its own: the base image's pip installs into it with --python.
RUN python -m venv --without-pip /opt/venv
WORKDIR /src
# Dependencies first, so a code change reuses this layer. --require-hashes: every wheel must match
# the lock (litellm is pinned exactly; two of its releases were malicious).
COPY requirements.lock requirements-build.lock ./
RUN python -m pip --python /opt/venv/bin/python install --require-hashes --no-deps -r requirements.lock \
    && python -m pip install --require-hashes --no-deps -r requirements-build.lock
COPY pyproject.toml README.md ./
COPY router ./router
COPY classifiers ./classifiers
COPY policies ./policies
# The project itself, without touching the locked dependencies; built with the hash-pinned build tools.
RUN python -m pip --python /opt/venv/bin/python install --no-deps --no-build-isolation .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="model-router" \
      org.opencontainers.image.description="OpenAI-compatible gateway routing to Kimi K2.5, GPT and Claude" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 router \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin router
COPY --from=builder /opt/venv /opt/venv
# HOME=/tmp: the root filesystem is read-only in the chart; /tmp is the one writable mount.
# LITELLM_LOCAL_MODEL_COST_MAP: use the price map shipped in the wheel, never fetch it at start-up.
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["model-router"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
