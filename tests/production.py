"""The real production parts for the tests: a PostgreSQL server in a temporary folder, the
Dagster daemon and webserver of deploy/ on it, and an SMTP server that keeps what it gets.

Every server is started here as a subprocess (or thread) and stopped in a `finally`, by its
own process id or process group, whatever happened in between."""

from __future__ import annotations

import email
import email.policy
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Callable, Iterator, TypeVar

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent
# The unprivileged user that runs PostgreSQL when the tests run as root (as CI does):
# Debian's postgresql package creates it.
SERVER_USERS = ("postgres", "nobody")
LOCATION = "keha_maksatus"
REPOSITORY = "__repository__"
T = TypeVar("T")


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(what: str, probe: Callable[[], T], timeout: float = 120.0, interval: float = 0.5,
             log: Path | None = None) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` (and the log's end) after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = ""
            if log is not None and log.exists():
                tail = "\n--- end of " + str(log) + " ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}{tail}")
        time.sleep(interval)


# --- PostgreSQL ---------------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """The folder of PostgreSQL's initdb and pg_ctl (pg_config --bindir, else the newest
    Debian /usr/lib/postgresql/*/bin), or None when PostgreSQL is not installed."""
    candidates = []
    if shutil.which("pg_config"):
        result = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0)
    candidates += [Path(p) for p in reversed(versions)]
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def _server_user() -> pwd.struct_passwd | None:
    """The user to run the server as when we are root (PostgreSQL refuses root), else None."""
    if os.geteuid() != 0:
        return None
    for name in SERVER_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError(f"running as root and none of the users {SERVER_USERS} exists to run PostgreSQL as")


def _as_user(user: pwd.struct_passwd | None, argv: list[str]) -> list[str]:
    if user is None:
        return argv
    if shutil.which("runuser"):
        return ["runuser", "-u", user.pw_name, "--", *argv]
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", *argv]


@dataclass
class PostgresServer:
    bindir: Path
    folder: Path
    port: int
    user: str = "keha"
    password: str = ""
    database: str = "dagster"

    def dagster_env(self) -> dict[str, str]:
        """The variables deploy/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.database,
        }

    def connect(self, database: str | None = None):
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                                dbname=database or self.database)


@contextmanager
def postgres_server(bindir: Path) -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster in a temporary folder, owned and run by an unprivileged
    user when we are root, listening on a free port of 127.0.0.1 (password login) and on a
    socket in the folder; one empty database. Stopped and removed afterwards."""
    user = _server_user()
    # Not under pytest's tmp_path: its parents are private to root, and the server's user
    # must reach its data folder.
    folder = Path(tempfile.mkdtemp(prefix="keha-pg-"))
    server = PostgresServer(bindir, folder, free_port(), password=secrets.token_urlsafe(16))
    data = folder / "data"
    log = folder / "server.log"
    password_file = folder / "password"
    password_file.write_text(server.password + "\n")
    password_file.chmod(0o600)
    if user is not None:
        for path in (folder, password_file):
            os.chown(path, user.pw_uid, user.pw_gid)
    started = False
    try:
        subprocess.run(
            _as_user(user, [str(bindir / "initdb"), "-D", str(data), "-U", server.user, f"--pwfile={password_file}",
                            "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-locale"]),
            check=True, capture_output=True, text=True,
        )
        options = (f"-c listen_addresses=127.0.0.1 -c port={server.port} -c unix_socket_directories={folder} "
                   "-c fsync=off -c full_page_writes=off")
        subprocess.run(
            _as_user(user, [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options, "start"]),
            check=True, capture_output=True, text=True,
        )
        started = True
        con = server.connect("postgres")
        con.autocommit = True
        with con.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {server.database}")
        con.close()
        yield server
    except subprocess.CalledProcessError as error:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"{error.cmd[0:4]} failed: {error.stderr or error.stdout}\n{tail}") from error
    finally:
        if started:
            stopped = subprocess.run(_as_user(user, [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                                     capture_output=True)
            if stopped.returncode != 0:
                _kill_postmaster(data)
        shutil.rmtree(folder, ignore_errors=True)


def _kill_postmaster(data: Path) -> None:
    """Stop the server this module started, by the process id in its postmaster.pid."""
    try:
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGQUIT)
    except (OSError, ValueError, IndexError):
        pass


# --- SMTP ---------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """What the SMTP server received: each message parsed, with its envelope recipients."""

    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on a free port of 127.0.0.1, in a thread of this process."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox("127.0.0.1", free_port())
    controller = Controller(mailbox, hostname=mailbox.host, port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()


# --- Dagster processes -----------------------------------------------------------------------


class DagsterProcess:
    """A dagster-daemon or dagster-webserver subprocess in a process group of its own (its
    code server and the runs it launches join the group); output into a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path):
        self.argv, self.env, self.cwd, self.log = argv, env, cwd, log
        self.process: subprocess.Popen | None = None

    def start(self) -> "DagsterProcess":
        handle = self.log.open("ab")
        try:
            self.process = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=handle, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            handle.close()
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        """Ask for Dagster's own clean shutdown (SIGTERM); stop() waits for it."""
        if self.running:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and a wait, then SIGKILL to whatever of the process group is left."""
        if self.process is None:
            return None
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        try:
            os.killpg(process.pid, signal.SIGKILL)  # what is left of the group started for it
        except ProcessLookupError:
            pass
        return process.returncode


def stop_all(processes: list[DagsterProcess | None]) -> None:
    """Stop the processes, all asked at once."""
    for process in processes:
        if process is not None:
            process.terminate()
    for process in processes:
        if process is not None:
            process.stop()


def daemon(env: dict[str, str], cwd: Path, log: Path, workspace: Path = DEPLOY / "workspace.yaml") -> DagsterProcess:
    return DagsterProcess([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], env, cwd, log)


def webserver(env: dict[str, str], cwd: Path, log: Path, port: int, workspace: Path = DEPLOY / "workspace.yaml") -> DagsterProcess:
    return DagsterProcess([str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", str(workspace)], env, cwd, log)


def graphql(url: str, query: str, variables: dict | None = None, timeout: float = 30.0) -> dict:
    """POST a GraphQL query to the webserver; its `data` (an error in the answer fails)."""
    request = urllib.request.Request(
        f"{url}/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        body = json.loads(answer.read())
    if body.get("errors"):
        raise AssertionError(f"GraphQL errors: {body['errors']}")
    return body["data"]


def answers(url: str) -> bool:
    """Whether the webserver answers on its GraphQL endpoint."""
    try:
        return "version" in graphql(url, "{ version }", timeout=5)
    except (OSError, AssertionError, ValueError):
        return False
