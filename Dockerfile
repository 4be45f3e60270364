# syntax=docker/dockerfile:1
# Multi-stage, slim, non-root image of probcast.
FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir uv==0.13.*
COPY pyproject.toml README.md ./
COPY src ./src
RUN uv venv /opt/venv && VIRTUAL_ENV=/opt/venv uv pip install --no-cache --compile-bytecode .

FROM python:3.11-slim AS runtime
RUN useradd --create-home --uid 10001 probcast
COPY --from=build /opt/venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH" \
    PROBCAST_CACHE=/home/probcast/.cache/probcast \
    MPLBACKEND=Agg
USER 10001
WORKDIR /home/probcast
ENTRYPOINT ["probcast"]
CMD ["--help"]
