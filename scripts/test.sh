#!/usr/bin/env bash
# Install everything the tests need into .venv (and the MCP Inspector CLI into .ci/node), then run the suite.
# Usage: scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'

# The wire-level test drives the server with the MCP Inspector CLI (a Node.js package).
INSPECTOR_VERSION=2.12.0
if command -v npm >/dev/null 2>&1; then
  if [ ! -f .ci/node/node_modules/@modelcontextprotocol/inspector/package.json ]; then
    mkdir -p .ci/node
    npm install --silent --no-audit --no-fund --prefix .ci/node "@modelcontextprotocol/inspector@${INSPECTOR_VERSION}" >/dev/null
  fi
  # The Claude Desktop bundle (dist/pec-mcp.mcpb) is built and validated with the official MCPB CLI.
  MCPB_VERSION=2.1.2
  if [ ! -f .ci/node/node_modules/@anthropic-ai/mcpb/package.json ]; then
    npm install --silent --no-audit --no-fund --prefix .ci/node "@anthropic-ai/mcpb@${MCPB_VERSION}" >/dev/null
  fi
else
  echo "npm not found: the MCP Inspector and MCP Bundle tests will be skipped (they fail under CI=true)" >&2
fi

# The IMAP client is tested against a real Dovecot (started by the tests on loopback with its own config).
if ! command -v dovecot >/dev/null 2>&1 && [ ! -x /usr/sbin/dovecot ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd >/dev/null
  else
    echo "dovecot not found: the IMAP server tests will be skipped (they fail under CI=true)" >&2
  fi
fi

.venv/bin/ruff check pec_mcp tests bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
