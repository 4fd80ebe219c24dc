"""Throw-away PostgreSQL, Redis and stripe-mock servers on free loopback ports.

The one place that starts them: the test runner (``scripts/run_tests.py``),
the tests that restart Redis, and the benchmarks import it. No Django, so it
works before settings exist.

Two ways to hold a server:

- ``postgres_server()`` / ``redis_server()``: context managers that start a
  server in a temporary folder, yield its URL and stop it (and remove the
  folder) on exit;
- ``postgres_start(folder)`` / ``postgres_stop(folder)`` and ``redis_start`` /
  ``redis_stop``: a server that outlives this process, kept in ``folder``
  (data, log, pid file) until the stop call, perhaps from another process.

As root, PostgreSQL runs as the ``postgres`` user (``runuser -u postgres``):
``initdb`` refuses to run as root.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

# durability off: the data is thrown away, speed is what matters
_POSTGRES_OPTIONS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
    "-c full_page_writes=off -c max_connections=200"
)


class ServiceError(RuntimeError):
    """A server could not be found, started or reached."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
    except OSError:
        return False
    return True


def _wait(ready: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise ServiceError(f"{what} within {timeout:.0f}s")
        time.sleep(0.05)


def wait_for_port(port: int, what: str, timeout: float = 30) -> None:
    """Block until something accepts connections on ``127.0.0.1:port``."""
    _wait(lambda: port_is_open(port), f"{what} did not start on port {port}", timeout)


def pg_bin(name: str) -> str:
    """A PostgreSQL program: the newest /usr/lib/postgresql/*/bin, else PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path:
        return path
    raise ServiceError(f"PostgreSQL's {name} not found: install postgresql")


# ------------------------------------------------------------------ PostgreSQL
def _as_postgres() -> list[str]:
    """The command prefix that runs a server program as its owner."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _run(argv: list[str], what: str, log: Path | None = None) -> None:
    try:
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    except subprocess.CalledProcessError as error:
        tail = log.read_text()[-2000:] if log and log.exists() else ""
        raise ServiceError(f"{what} failed ({error.returncode})\n{tail}") from error


def postgres_start(folder: Path, *, port: int | None = None) -> str:
    """A new cluster in ``folder`` with database ``apex`` (user ``apex``, trust
    authentication); returns its URL. It runs until ``postgres_stop(folder)``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    data, log = folder / "data", folder / "log"
    if data.exists():
        raise ServiceError(f"{data} exists: stop and remove the old cluster first")
    as_user = _as_postgres()
    if as_user:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise ServiceError("running as root needs a 'postgres' user") from None
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    port = port or free_port()
    logger.info("starting PostgreSQL on 127.0.0.1:%d", port)
    _run(
        [*as_user, pg_bin("initdb"), "-D", str(data), "-U", "apex",
         "--auth=trust", "-E", "UTF8", "--no-sync"],
        "initdb",
    )  # fmt: skip
    _run(
        [*as_user, pg_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-w",
         "-o", f"-p {port} -k {folder} {_POSTGRES_OPTIONS}", "start"],
        "pg_ctl start",
        log,
    )  # fmt: skip
    _run(
        [pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "apex",
         "apex"],
        "createdb",
        log,
    )  # fmt: skip
    return f"postgres://apex@127.0.0.1:{port}/apex"


def postgres_stop(folder: Path, *, mode: str = "fast") -> None:
    """Stop the cluster in ``folder`` (``mode``: pg_ctl's fast or immediate);
    the files stay. Nothing happens when there is no cluster there."""
    data = folder / "data"
    if not (data / "postmaster.pid").exists():
        return
    subprocess.run(
        [*_as_postgres(), pg_bin("pg_ctl"), "-D", str(data), "-m", mode, "stop"],
        stdout=subprocess.DEVNULL,
        check=False,
    )
    logger.info("stopped PostgreSQL")


def postgres_restart(folder: Path, *, down_s: float = 0.0, mode: str = "fast") -> None:
    """Stop the running cluster in ``folder`` (pg_ctl ``mode``), wait
    ``down_s`` seconds and start it again with the options it ran with
    (``postmaster.opts``: same port, same socket folder); returns once it
    accepts connections. For the fault tests and benchmarks."""
    data = folder / "data"
    # the server's command line: the binary, then quoted arguments
    argv = shlex.split((data / "postmaster.opts").read_text())[1:]
    options = []
    while argv:
        arg = argv.pop(0)
        if arg == "-D":
            argv.pop(0)
        else:
            options.append(arg)
    as_user = _as_postgres()
    pg_ctl = pg_bin("pg_ctl")
    _run([*as_user, pg_ctl, "-D", str(data), "-m", mode, "-w", "stop"], "pg_ctl stop")
    time.sleep(down_s)
    _run(
        [*as_user, pg_ctl, "-D", str(data), "-l", str(folder / "log"), "-w",
         "-o", shlex.join(options), "start"],
        "pg_ctl start",
        folder / "log",
    )  # fmt: skip


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throw-away cluster for the ``with`` block; yields its URL."""
    folder = Path(tempfile.mkdtemp(prefix="apex-pg-"))
    try:
        yield postgres_start(folder)
    finally:
        postgres_stop(folder, mode="immediate")
        shutil.rmtree(folder, ignore_errors=True)


# ----------------------------------------------------------------------- Redis
def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a daemon is nobody's child here: once it exits it may stay a zombie
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _pid(pidfile: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(pidfile.read_text().strip())
    return None


def redis_start(folder: Path, *, port: int | None = None, timeout: float = 30) -> str:
    """A Redis server without persistence, its pid file and log in ``folder``;
    returns its URL. It runs until ``redis_stop(folder)``."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceError("redis-server not found: install redis-server")
    folder.mkdir(parents=True, exist_ok=True)
    pidfile, log = folder / "redis.pid", folder / "redis.log"
    if (pid := _pid(pidfile)) and _running(pid):
        raise ServiceError(f"a Redis server from {folder} still runs (pid {pid})")
    pidfile.unlink(missing_ok=True)
    port = port or free_port()
    logger.info("starting Redis on 127.0.0.1:%d", port)
    _run(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder), "--daemonize", "yes",
         "--pidfile", str(pidfile), "--logfile", str(log)],
        "redis-server",
    )  # fmt: skip

    def ready() -> bool:
        pid = _pid(pidfile)
        if pid and not _running(pid):
            raise ServiceError(f"Redis exited\n{log.read_text()[-2000:]}")
        return pid is not None and port_is_open(port)

    _wait(ready, f"Redis did not start on port {port}", timeout)
    return f"redis://127.0.0.1:{port}/0"


def redis_stop(folder: Path, *, timeout: float = 10) -> None:
    """Stop the Redis server of ``folder`` and wait until it has exited, so its
    port is free again. Nothing happens when none runs."""
    pidfile = folder / "redis.pid"
    pid = _pid(pidfile)
    if pid and _running(pid):
        os.kill(pid, signal.SIGTERM)
        try:
            _wait(lambda: not _running(pid), "Redis did not stop", timeout)
        except ServiceError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        logger.info("stopped Redis")
    pidfile.unlink(missing_ok=True)


@contextlib.contextmanager
def redis_server(*, port: int | None = None) -> Iterator[str]:
    """A throw-away Redis server for the ``with`` block; yields its URL.
    ``port`` picks the port (a test restarting "the same" server)."""
    folder = Path(tempfile.mkdtemp(prefix="apex-redis-"))
    try:
        yield redis_start(folder, port=port)
    finally:
        redis_stop(folder)
        shutil.rmtree(folder, ignore_errors=True)


def process_stop(proc: subprocess.Popen, *, timeout: float = 20) -> None:
    """Stop a child process: SIGTERM, then SIGKILL after ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------ stripe-mock
STRIPE_MOCK_MODULE = "github.com/stripe/stripe-mock"
STRIPE_MOCK_VERSION = "v0.203.0"


def stripe_mock_binary() -> Path:
    """stripe-mock, built with ``go install`` into the cache outside the clone
    (``$APEX_CACHE_DIR``, default ``~/.cache/apex``) the first time."""
    cache = Path(os.environ.get("APEX_CACHE_DIR", Path.home() / ".cache" / "apex"))
    folder = cache / "bin" / f"stripe-mock-{STRIPE_MOCK_VERSION}"
    binary = folder / "stripe-mock"
    if binary.exists():
        return binary
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is None:
        raise ServiceError("stripe-mock needs the Go toolchain: install golang-go")
    folder.mkdir(parents=True, exist_ok=True)
    logger.info("installing stripe-mock %s (go install)", STRIPE_MOCK_VERSION)
    try:
        subprocess.run(
            [go, "install", f"{STRIPE_MOCK_MODULE}@{STRIPE_MOCK_VERSION}"],
            check=True,
            env={**os.environ, "GOBIN": str(folder)},
            cwd=tempfile.gettempdir(),
        )
    except subprocess.CalledProcessError as error:
        raise ServiceError(
            f"go install stripe-mock failed ({error.returncode})"
        ) from error
    return binary


def stripe_mock_fixtures(binary: Path) -> Path | None:
    """stripe-mock's own fixtures with the changes dj-stripe 2.11 needs to sync
    what it re-fetches while it processes subscription, invoice and checkout
    events: the sample customer's ``discount`` (the API's new shape, its
    coupon under ``source``: "empty field Coupon.coupon") made null, and ids
    for the product feature that has an empty one. Read from the module source
    that ``go install`` left in the Go module cache; None when it is gone
    (stripe-mock then serves its bundled fixtures)."""
    patched = binary.parent / "fixtures-apex.json"
    if patched.exists():
        return patched
    go = shutil.which("go") or "/usr/local/go/bin/go"
    try:
        modcache = subprocess.run(
            [go, "env", "GOMODCACHE"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    source = (
        Path(modcache)
        / f"{STRIPE_MOCK_MODULE}@{STRIPE_MOCK_VERSION}"
        / "embedded/openapi/fixtures3.json"
    )
    if not source.exists():  # the module cache was cleaned since the install
        subprocess.run(
            [go, "mod", "download", f"{STRIPE_MOCK_MODULE}@{STRIPE_MOCK_VERSION}"],
            cwd=tempfile.gettempdir(),
            stdout=subprocess.DEVNULL,
            check=False,
        )
    if not source.exists():
        return None
    fixtures = json.loads(source.read_text())
    fixtures["resources"]["customer"]["discount"] = None
    # objects with an empty id (product features): dj-stripe refuses them
    feature = fixtures["resources"]["product_feature"]
    feature["id"] = "prodft_mock"
    feature["entitlement_feature"]["id"] = "feat_mock"
    partial = patched.with_suffix(".partial")
    partial.write_text(json.dumps(fixtures))
    partial.replace(patched)
    return patched


def stripe_mock_start(*, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """stripe-mock on a free port; returns the process and its base URL."""
    port = port or free_port()
    logger.info("starting stripe-mock on 127.0.0.1:%d", port)
    # HTTPS goes to any free port: stripe-mock always serves it, and its
    # default port may be taken
    binary = stripe_mock_binary()
    fixtures = stripe_mock_fixtures(binary)
    proc = subprocess.Popen(
        [str(binary), "-http-addr", f"127.0.0.1:{port}",
         "-https-addr", "127.0.0.1:0",
         *(["-fixtures", str(fixtures)] if fixtures else [])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def ready() -> bool:
        if proc.poll() is not None:
            raise ServiceError(f"stripe-mock exited with {proc.returncode}")
        return port_is_open(port)

    try:
        _wait(ready, f"stripe-mock did not start on port {port}", 30)
    except ServiceError:
        process_stop(proc)
        raise
    return proc, f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def stripe_mock_server() -> Iterator[str]:
    """A stripe-mock for the ``with`` block; yields its URL."""
    proc, url = stripe_mock_start()
    try:
        yield url
    finally:
        process_stop(proc)
