# syntax=docker/dockerfile:1
# CPU image of probcast: one image for train, run, serve, consume, schedule and monitor (the
# command is the container's argument: `probcast run ...`, `probcast serve ...`).
# Multi-stage: the build stage installs the locked dependencies (uv.lock) into /opt/venv,
# byte-compiled as `make venv` does; the runtime stage holds only that venv and runs as uid 10001.
# BASE: any Debian-based image with python3.11 and python3-venv (docs/deployment.md: pin its
# digest in the release pipeline; CI builds it from Debian packages with debootstrap).
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
ARG UV_VERSION=0.13.9
# Extras of pyproject.toml installed besides the dependencies: state store and broker drivers.
ARG UV_EXTRAS="--extra postgres --extra pubsub"
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON=python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy
WORKDIR /src
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}"
COPY pyproject.toml uv.lock README.md ./
# The dependencies alone first (a layer kept while only the source changes), then probcast.
RUN /opt/uv/bin/uv sync --locked --no-install-project --no-editable --compile-bytecode --no-cache ${UV_EXTRAS}
COPY src ./src
RUN /opt/uv/bin/uv sync --locked --no-editable --compile-bytecode --no-cache ${UV_EXTRAS}

FROM ${BASE} AS runtime
RUN useradd --create-home --uid 10001 --user-group probcast
COPY --from=build /opt/venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH" \
    PROBCAST_CACHE=/home/probcast/.cache/probcast \
    MPLBACKEND=Agg \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /home/probcast
EXPOSE 8000
ENTRYPOINT ["probcast"]
CMD ["--help"]
