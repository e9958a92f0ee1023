"""A real Dovecot IMAP server for tests: its own config, loopback ports, TLS, passwd-file users, maildirs, quota.

Nothing of the machine's Dovecot set-up is read (``-c`` names our file, which includes nothing). Dovecot runs in
the foreground (``-F``) as a child of the test process and is stopped with SIGTERM.

Options that matter when the tests run as root (as in CI): Dovecot refuses to give mail access to UID 0 and
drops privileges for its internal and login processes, so ``default_internal_user`` and ``default_login_user``
name existing unprivileged users (``dovecot`` and ``dovenull`` from the Debian package) and the mail folders
belong to ``dovecot``, the user every test mailbox is served as. Run as another user, every one of these is that
user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

from tests.pecmail.tls import MailPki, make_pki

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Dovecot:
    """A running Dovecot: ports, the CA its certificate chains to, and a way to add users."""

    folder: Path
    pki: MailPki
    imaps_port: int
    imap_port: int  # plain IMAP that demands STARTTLS before login
    process: subprocess.Popen[bytes] | None = None
    _names: count[int] = field(default_factory=lambda: count(1))

    @property
    def users_dir(self) -> Path:
        return self.folder / "users"

    def add_user(self, password: str, *, quota_kib: int | None = None, name: str | None = None) -> str:
        """A new mailbox user (an address at pec.test), in a passwd-file of its own.

        One file per user: Dovecot reads a new file at once, where it may not notice a second change of one
        file within the same second.
        """
        user = name or f"box{next(self._names)}@pec.test"
        uid, gid = _mail_owner()
        home = self.folder / "mail" / user
        extra = f"userdb_quota_rule=*:storage={quota_kib}K" if quota_kib else ""
        (self.users_dir / user).write_text(f"{user}:{{PLAIN}}{password}:{uid}:{gid}::{home}::{extra}\n")
        return user

    def add_mbox_user(self, password: str, messages: Iterable[bytes]) -> str:
        """A user whose INBOX is one mbox file written at once: the quick way to a mailbox of many thousand
        messages (one file instead of one per message). Dovecot indexes it at the first SELECT."""
        user = f"big{next(self._names)}@pec.test"
        uid, gid = _mail_owner()
        home = self.folder / "mail" / user
        (home / "mail").mkdir(parents=True)
        with (home / "inbox.mbox").open("wb") as mbox:
            for raw in messages:
                mbox.write(b"From posta-certificata@pec.test Tue Mar 10 09:00:00 2026\n")
                mbox.write(raw.replace(b"\r\n", b"\n").replace(b"\nFrom ", b"\n>From "))
                mbox.write(b"\n")
        for path in (home, home / "mail", home / "inbox.mbox"):
            os.chown(path, uid, gid)
        extra = f"userdb_mail=mbox:{home}/mail:INBOX={home}/inbox.mbox"
        (self.users_dir / user).write_text(f"{user}:{{PLAIN}}{password}:{uid}:{gid}::{home}::{extra}\n")
        return user

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _mail_owner() -> tuple[int, int]:
    if os.geteuid() == 0:
        entry = pwd.getpwnam("dovecot")
        return entry.pw_uid, entry.pw_gid
    return os.geteuid(), os.getegid()


def _service_users() -> tuple[str, str]:
    if os.geteuid() == 0:
        return "dovecot", "dovenull"
    name = pwd.getpwuid(os.geteuid()).pw_name
    return name, name


def config_text(d: Dovecot) -> str:
    internal, login = _service_users()
    # Unix sockets live under base_dir, whose path must stay short (108 bytes): the folder is a short mkdtemp.
    return f"""
base_dir = {d.folder}/run
state_dir = {d.folder}/state
log_path = {d.folder}/dovecot.log
protocols = imap
listen = 127.0.0.1
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
ssl = required
ssl_cert = <{d.pki.cert_file}
ssl_key = <{d.pki.key_file}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d.users_dir}/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d.users_dir}/%u
}}
mail_location = maildir:~/Maildir
mail_plugins = quota
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
plugin {{
  quota = maildir:User quota
  quota_rule = *:storage=100M
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {d.imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {d.imaps_port}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def start_dovecot() -> Dovecot:
    """Start Dovecot on two free loopback ports and wait until it accepts connections."""
    folder = Path(tempfile.mkdtemp(prefix="dc-", dir="/tmp"))
    folder.chmod(0o755)
    pki = make_pki(folder / "tls")
    (folder / "tls").chmod(0o755)
    d = Dovecot(folder=folder, pki=pki, imaps_port=free_port(), imap_port=free_port())
    d.users_dir.mkdir()
    uid, gid = _mail_owner()
    (folder / "mail").mkdir()
    os.chown(folder / "mail", uid, gid)
    conf = folder / "dovecot.conf"
    conf.write_text(config_text(d))
    with open(folder / "stderr.log", "wb") as stderr:  # the child keeps its own copy of the descriptor
        d.process = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if d.process.poll() is not None:
            errors = (folder / "stderr.log").read_text(errors="replace") + d.log()
            d.stop()
            raise RuntimeError(f"dovecot exited at start-up: {errors[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", d.imaps_port), timeout=0.5):
                return d
        except OSError:
            time.sleep(0.05)
    d.stop()
    raise RuntimeError("dovecot did not start listening in time")
