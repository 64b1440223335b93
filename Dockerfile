# One image for every process; the command picks: web (default), worker, emulator.
#   docker build -t callstreams .
#   docker run callstreams                      # callstreams web --host 0.0.0.0
#   docker run callstreams callstreams worker

FROM python:3.11-slim AS builder
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir uv
WORKDIR /app
# Dependencies first, in their own layer: rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY service ./service
COPY worker ./worker
COPY README.md ./
# --no-editable: the project goes into the venv itself, so the venv is all the runtime needs.
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /app callstreams
WORKDIR /app
COPY --from=builder /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CALLSTREAMS_LOG_FORMAT=json \
    HOST=0.0.0.0
USER 10001:10001
# 8000: web (HTTP and /metrics); 9101: the worker's /metrics.
EXPOSE 8000 9101
# The web process's health. The worker serves no HTTP: deploy/compose.yaml and the
# Kubernetes manifests override this with `callstreams worker --check` for it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# uvicorn shuts down gracefully on SIGTERM (up to 20 s); arq finishes running jobs.
STOPSIGNAL SIGTERM
CMD ["callstreams", "web", "--host", "0.0.0.0"]
