# pec-mcp over streamable HTTP: `docker build -t pec-mcp . && docker run -p 8000:8000 -v pec-data:/data \
#   -e PEC_MCP_HTTP__AUTH_TOKEN=... -e PEC_MCP_PECMASSIVA__TOKEN=... pec-mcp`
# The store (ledger, jobs, audit trail) lives on the /data volume; the server runs as an unprivileged user and
# refuses to start without http.auth_token, since it listens on every interface of the container.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pec_mcp ./pec_mcp
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin pec \
    && mkdir -p /data /data/files && chown -R pec:pec /data && chmod 700 /data
USER 10001:10001
ENV PEC_MCP_STORE__PATH=/data/pec-mcp.sqlite3 \
    PEC_MCP_ATTACHMENTS__ALLOWED_DIRS='["/data/files"]' \
    PEC_MCP_HTTP__HOST=0.0.0.0 \
    PEC_MCP_HTTP__PORT=8000 \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-c", "import socket; socket.create_connection(('127.0.0.1', 8000), 3)"]
ENTRYPOINT ["pec-mcp"]
CMD ["serve", "--transport", "http"]
