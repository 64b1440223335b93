# One image for every process; the command picks: web (default), worker, emulator.
#   docker build -t callstreams .
#   docker run callstreams                      # callstreams web --host 0.0.0.0
#   docker run callstreams callstreams worker
# Build arguments (deploy/README.md, "The image"):
#   BASE_IMAGE  a Debian-based Python 3.11 image, for a mirror when Docker Hub is out of reach
#   UV_VERSION  the uv that installs uv.lock; keep it the version .ci/run pins

ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS builder
ARG UV_VERSION=0.13.9
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /app
# Dependencies first, in their own layer: rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY service ./service
COPY worker ./worker
COPY README.md ./
# --no-editable: the project goes into the venv itself, so the venv is all the runtime needs.
RUN uv sync --frozen --no-dev --no-editable

FROM ${BASE_IMAGE}
# A regular account (10001 is above SYS_UID_MAX, so not --system) without a login shell;
# --no-log-init keeps a sparse 10001-entry lastlog out of the layer.
RUN groupadd --gid 10001 callstreams \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /app \
        --shell /usr/sbin/nologin --no-log-init callstreams
WORKDIR /app
COPY --from=builder /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CALLSTREAMS_LOG_FORMAT=json \
    HOST=0.0.0.0
USER 10001:10001
# 8000: web (HTTP and /metrics); 9101: the worker's /metrics.
EXPOSE 8000 9101
# Fits whichever process the container runs: `callstreams health` finds it from /proc
# (web: /healthz; worker: its heartbeat in Redis; emulator: /_emulator/stats).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["callstreams", "health"]
# uvicorn shuts down gracefully on SIGTERM (up to 20 s); arq finishes running jobs.
STOPSIGNAL SIGTERM
CMD ["callstreams", "web", "--host", "0.0.0.0"]
