"""Run the whole test suite against throw-away PostgreSQL and Redis servers.

``make test`` calls this. Unless DATABASE_URL / REDIS_URL are given, it starts
a private PostgreSQL cluster and a Redis server on free loopback ports, runs
``makemigrations --check`` and pytest (every marker), then stops what it
started. Extra arguments go to pytest.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def log(message: str) -> None:
    print(f"==> {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), 0.5),
        ):
            return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start on port {port} within {timeout:.0f}s")


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path:
        return path
    raise SystemExit(f"PostgreSQL's {name} not found: install postgresql (see README)")


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    workdir = Path(tempfile.mkdtemp(prefix="apex-pg-"))
    data, port = workdir / "data", free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        pw = pwd.getpwnam("postgres")
        os.chown(workdir, pw.pw_uid, pw.pw_gid)
    log(f"starting PostgreSQL on 127.0.0.1:{port}")
    subprocess.run(
        [
            *as_user,
            pg_bin("initdb"),
            "-D",
            str(data),
            "-U",
            "apex",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    options = (
        f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        [
            *as_user,
            pg_bin("pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(workdir / "log"),
            "-w",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        subprocess.run(
            [
                pg_bin("createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "apex",
                "apex",
            ],
            check=True,
        )
        yield f"postgres://apex@127.0.0.1:{port}/apex"
    finally:
        subprocess.run(
            [*as_user, pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            stdout=subprocess.DEVNULL,
            check=False,
        )
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: install redis-server (see README)")
    port = free_port()
    log(f"starting Redis on 127.0.0.1:{port}")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, "Redis")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main(pytest_args: list[str]) -> int:
    env = dict(os.environ)
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env["DJANGO_SETTINGS_MODULE"] = "apex_site.settings.test"
    with contextlib.ExitStack() as stack:
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"] = stack.enter_context(postgres())
        if not env.get("REDIS_URL"):
            env["REDIS_URL"] = stack.enter_context(redis_server())
        env.setdefault(
            "APEX_DATA_DIR",
            stack.enter_context(tempfile.TemporaryDirectory(prefix="apex-data-")),
        )

        log("checking that every model change has a migration")
        subprocess.run(
            [PYTHON, "manage.py", "makemigrations", "--check", "--dry-run"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        log("running the test suite (all markers)")
        started = time.monotonic()
        code = subprocess.call(
            [PYTHON, "-m", "pytest", *pytest_args], cwd=ROOT, env=env
        )
        log(f"pytest finished in {time.monotonic() - started:.0f}s, exit code {code}")
        return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
