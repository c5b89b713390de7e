# One non-root image for the API server and the workers:
#   docker run IMAGE serve            API (+ workers as child processes)
#   docker run IMAGE worker persist   one worker process
# Point LASTMILE_DATABASE_URL and LASTMILE_REDIS_URL at PostgreSQL/TimescaleDB and Redis;
# without them the embedded servers start under /data (one-machine trials only).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app app
COPY adapters adapters
COPY realtime realtime
COPY solver solver
COPY workers workers
COPY schemas schemas
COPY store store
COPY simulator simulator
RUN python -m venv /opt/lastmile && /opt/lastmile/bin/pip install --no-cache-dir .

FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 lastmile && mkdir /data && chown lastmile /data
COPY --from=build /opt/lastmile /opt/lastmile
ENV PATH=/opt/lastmile/bin:$PATH \
    LASTMILE_DATA_DIR=/data \
    LASTMILE_HOST=0.0.0.0 \
    LASTMILE_LOG_FORMAT=json
USER lastmile
WORKDIR /data
EXPOSE 8000 5055
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
ENTRYPOINT ["lastmile"]
CMD ["serve"]
