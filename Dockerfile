# syntax=docker/dockerfile:1
# Two images from one file:
#   docker build -t steward .                          the operator (no torch)
#   docker build --target compress-runner -t steward-compress .   the compression runner

ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS operator
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-compile /wheels/*.whl \
    && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin steward
USER 10001:10001
ENTRYPOINT ["steward"]
CMD ["run"]

# The compression runner (`steward compress`, run by CompressionJobs): the operator plus the
# `compress` extra (torch, torchao). A C++ compiler is there for torch.compile
# (`evaluation.compile`: inductor's CPU kernels and Triton's launchers are compiled at run
# time); its caches go to /tmp, as the runner's user has no home. TORCH_INDEX names an extra
# package index (e.g. CPU-only wheels).
FROM operator AS compress-runner
USER root
ARG TORCH_INDEX=""
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-compile ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} \
    "$(ls /wheels/ai_steward-*.whl)[compress]"
ENV TORCHINDUCTOR_CACHE_DIR=/tmp/torchinductor TRITON_CACHE_DIR=/tmp/triton
USER 10001:10001
