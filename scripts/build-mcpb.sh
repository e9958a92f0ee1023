#!/usr/bin/env bash
# Build the Claude Desktop MCP Bundle: dist/pec-mcp.mcpb (the manifest, pyproject.toml and the package; the host
# installs Python and the dependencies with uv). Needs the @anthropic-ai/mcpb CLI (scripts/test.sh installs it).
# Usage: scripts/build-mcpb.sh [output.mcpb]
set -euo pipefail
cd "$(dirname "$0")/.."
MCPB=${MCPB:-.ci/node/node_modules/.bin/mcpb}
out=${1:-dist/pec-mcp.mcpb}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp packaging/mcpb/manifest.json pyproject.toml README.md "$stage/"
mkdir -p "$stage/pec_mcp"
tar -C pec_mcp --exclude=__pycache__ -cf - . | tar -C "$stage/pec_mcp" -xf -
"$MCPB" validate "$stage/manifest.json"
mkdir -p "$(dirname "$out")"
"$MCPB" pack "$stage" "$out"
