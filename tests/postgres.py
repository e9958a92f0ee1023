"""A real PostgreSQL 15 server for the tests: a temp cluster on a free loopback port, stopped at the end.

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` system user (Debian's
package creates it) and ``initdb`` / ``pg_ctl`` run as that user. Each test gets a database of its own.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "pg-test-" + secrets.token_hex(8)
USER = "pec"


class Unavailable(Exception):
    """PostgreSQL cannot be started on this machine (not installed, or no user it may run as)."""


def bindir() -> Path:
    """Where the server binaries are: ``pg_config --bindir``, else Debian's folder for version 15."""
    candidates = []
    if shutil.which("pg_config"):
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(Path(found.stdout.strip()))
    candidates.append(Path("/usr/lib/postgresql/15/bin"))
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise Unavailable("initdb and pg_ctl not found (install the postgresql-15 Debian package)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A running cluster: ``url(database)`` gives a postgresql:// URL with the password."""

    port: int
    data: Path
    run_as: list[str]
    bin: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        import psycopg

        name = f"{prefix}_{secrets.token_hex(6)}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        subprocess.run([*self.run_as, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                        "stop"], capture_output=True, check=False)


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """Start a throwaway cluster; raises Unavailable when PostgreSQL cannot run here."""
    binaries = bindir()
    run_as: list[str] = []
    if os.geteuid() == 0:
        try:
            import pwd

            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and there is no 'postgres' user to run the server as") from None
        run_as = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="pec-mcp-pg-"))
    data = root / "data"
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if run_as:
        os.chown(root, owner.pw_uid, owner.pw_gid)
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    port = free_port()
    try:
        _run([*run_as, str(binaries / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(pwfile),
              "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C"])
        options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=300 -c shared_buffers=32MB")
        _run([*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w",
              "-t", "60", "start"])
    except subprocess.CalledProcessError as exc:
        log = root / "log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise Unavailable(f"PostgreSQL did not start: {exc.stderr or exc}\n{detail}") from None
    running = Cluster(port=port, data=data, run_as=run_as, bin=binaries)
    try:
        yield running
    finally:
        running.stop()
        shutil.rmtree(root, ignore_errors=True)


def _run(command: list[str]) -> None:
    subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
