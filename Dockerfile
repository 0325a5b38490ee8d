# syntax=docker/dockerfile:1
# perfwatch images. Default target `consumer`: the stream processor with only the consumer's extras
# (onnxruntime, tokenizers, confluent-kafka, pydantic, prometheus-client): no torch, no transformers.
# Target `producer`: publish / replay / generate / alerts / report, for the compose `replay` profile.

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system perfwatch && useradd --system --gid perfwatch --home-dir /app perfwatch
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
# Every folder of the layout but bench/: benchmarks are not shipped (setup.py skips a missing folder).
COPY perfwatch ./perfwatch
COPY runtime ./runtime
COPY tooling ./tooling
COPY consumer ./consumer
COPY producer ./producer
COPY subscriber ./subscriber
COPY training ./training
COPY export ./export
COPY app ./app

FROM base AS producer
RUN pip install ".[producer,subscriber]"
COPY examples ./examples
USER perfwatch
ENTRYPOINT ["perfwatch"]
CMD ["alerts", "--help"]

FROM base AS consumer
RUN pip install ".[consumer]"
USER perfwatch
EXPOSE 9108
# Liveness on the metrics port (PERFWATCH_METRICS_PORT, 9108 in compose): /healthz answers 503 when the loop
# is stuck or has made no progress for PERFWATCH_LIVENESS_S while work waits (urlopen raises on 503).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PERFWATCH_METRICS_PORT', '9108') + '/healthz', timeout=4)"]
# Exec form: perfwatch is PID 1 and gets SIGTERM itself (finish the batch, commit, leave the group).
ENTRYPOINT ["perfwatch"]
CMD ["consume"]
