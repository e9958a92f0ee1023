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
# The browser tests check the dashboard and the MCP App views with axe-core (accessibility rules, run in the page).
AXE_VERSION=4.14.1
if command -v npm >/dev/null 2>&1; then
  if [ ! -f .ci/node/node_modules/@modelcontextprotocol/inspector/package.json ]; then
    mkdir -p .ci/node
    npm install --silent --no-audit --no-fund --prefix .ci/node "@modelcontextprotocol/inspector@${INSPECTOR_VERSION}" >/dev/null
  fi
  if [ ! -f .ci/node/node_modules/axe-core/axe.min.js ]; then
    mkdir -p .ci/node
    npm install --silent --no-audit --no-fund --prefix .ci/node "axe-core@${AXE_VERSION}" >/dev/null
  fi
  # The Claude Desktop bundle (dist/pec-mcp.mcpb) is built and validated with the official MCPB CLI.
  MCPB_VERSION=2.1.2
  if [ ! -f .ci/node/node_modules/@anthropic-ai/mcpb/package.json ]; then
    npm install --silent --no-audit --no-fund --prefix .ci/node "@anthropic-ai/mcpb@${MCPB_VERSION}" >/dev/null
  fi
else
  echo "npm not found: the MCP Inspector and MCP Bundle tests will be skipped (they fail under CI=true)" >&2
fi

# Real servers the tests start on loopback, from Debian's packages: PostgreSQL 15 (the PostgreSQL store), Dovecot
# (the IMAP client), Chromium (the dashboard and MCP App views, never a browser downloaded by Playwright), and nginx
# (the proxy of deploy/local.sh, whose test runs the whole deployment). As root
# (CI, a fresh machine) the missing ones are installed; elsewhere their tests are skipped, except under CI=true.
missing=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "not installed: ${missing[*]}: the tests that need them will be skipped (they fail under CI=true)" >&2
  fi
fi

.venv/bin/ruff check pec_mcp tests bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
