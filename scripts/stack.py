"""The production shape on loopback: WSGI workers, the ASGI server, nginx.

HTTP goes to a WSGI server (granian in WSGI mode, the production choice; or
gunicorn with ``apex_site/gunicorn_conf.py``, for the comparison: see
``docs/BENCHMARKS.md``, issue 17), websockets to uvicorn (the ASGI
application, ``/ws/`` only), and nginx in front routes the two and serves
``/static/`` from the collected files, with the same server block that
docker-compose uses (``deploy/nginx/apex.conf.template``). The integration
tests that cross HTTP and websockets and the serving benchmarks start it;
``python scripts/stack.py --dir D`` runs one in the foreground with the
caller's environment (Ctrl-C stops it). No Django here: the servers are
child processes that read the environment given.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import string
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from scripts.servers import free_port, process_stop, wait_for_port  # noqa: E402

TEMPLATE = ROOT / "deploy" / "nginx" / "apex.conf.template"
WSGI_SERVERS = ("granian", "gunicorn", "gunicorn-sync")


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise RuntimeError("nginx is not installed (scripts/system_deps.sh)")
    return found


def render_server_block(
    *, listen: str, wsgi_upstream: str, asgi_upstream: str, static_root: Path
) -> str:
    """The template with the ``${APEX_*}`` names filled in; nginx's own
    ``$variables`` are left for nginx (``safe_substitute``)."""
    return string.Template(TEMPLATE.read_text()).safe_substitute(
        APEX_PROXY_LISTEN=listen,
        APEX_WSGI_UPSTREAM=wsgi_upstream,
        APEX_ASGI_UPSTREAM=asgi_upstream,
        APEX_STATIC_ROOT=str(static_root),
    )


def nginx_main_config(folder: Path) -> str:
    temp = "\n".join(
        f"    {kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # as root, nginx's workers drop to `nobody`, who cannot read a private
    # test folder's static files; a throw-away loopback proxy may stay root
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\n"
        "events { worker_connections 4096; }\n"
        "http {\n    include /etc/nginx/mime.types;\n"
        "    default_type application/octet-stream;\n"
        "    sendfile on;\n    keepalive_requests 100000;\n"
        f"{temp}\n    include {folder / 'apex.conf'};\n}}\n"
    )


def wsgi_command(
    server: str, port: int, workers: int, threads: int, root: Path = ROOT
) -> list[str]:
    python = sys.executable
    if server == "granian":
        return [python, "-m", "granian", "--interface", "wsgi",
                "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers), "--blocking-threads", str(threads),
                "--respawn-failed-workers", "--no-ws", "--log-level", "warning",
                "apex_site.wsgi:application"]  # fmt: skip
    config = root / "apex_site" / "gunicorn_conf.py"
    return [python, "-m", "gunicorn", "-c", str(config), "apex_site.wsgi:application"]


@dataclass
class Stack:
    address: str
    """``127.0.0.1:<port>`` of nginx: what clients use."""
    wsgi_address: str
    asgi_address: str
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)


@contextlib.contextmanager
def production_shape(
    folder: Path,
    env: Mapping[str, str],
    *,
    static_root: Path,
    wsgi: str = "granian",
    wsgi_workers: int = 2,
    wsgi_threads: int = 4,
    timeout: float = 90,
    root: Path = ROOT,
) -> Iterator[Stack]:
    """Start the WSGI server, uvicorn and nginx on free loopback ports with
    ``env``, running the code in ``root`` (a checkout; this one by default);
    stop all three when the block ends. Logs go to ``folder``."""
    if wsgi not in WSGI_SERVERS:
        raise ValueError(f"wsgi must be one of {WSGI_SERVERS}")
    folder.mkdir(parents=True, exist_ok=True)
    wsgi_port, asgi_port, proxy_port = free_port(), free_port(), free_port()
    child_env = {
        **env,
        "APEX_WSGI_BIND": f"127.0.0.1:{wsgi_port}",
        "APEX_WSGI_WORKERS": str(wsgi_workers),
        "APEX_WSGI_THREADS": "1" if wsgi == "gunicorn-sync" else str(wsgi_threads),
    }
    stack = Stack(
        f"127.0.0.1:{proxy_port}", f"127.0.0.1:{wsgi_port}", f"127.0.0.1:{asgi_port}"
    )
    (folder / "apex.conf").write_text(
        render_server_block(
            listen=f"127.0.0.1:{proxy_port}",
            wsgi_upstream=stack.wsgi_address,
            asgi_upstream=stack.asgi_address,
            static_root=static_root,
        )
    )
    (folder / "nginx.conf").write_text(nginx_main_config(folder))
    commands = {
        "wsgi": wsgi_command(wsgi, wsgi_port, wsgi_workers, wsgi_threads, root),
        "asgi": [sys.executable, "-m", "uvicorn", "apex_site.asgi:application",
                 "--host", "127.0.0.1", "--port", str(asgi_port),
                 "--lifespan", "off", "--no-access-log", "--log-level", "warning"],
        "proxy": [nginx_binary(), "-c", str(folder / "nginx.conf"), "-p", str(folder),
                  "-e", str(folder / "nginx-error.log")],
    }  # fmt: skip
    try:
        for name, command in commands.items():
            log = open(folder / f"{name}.log", "w")  # noqa: SIM115
            stack.processes[name] = subprocess.Popen(
                command, cwd=root, env=child_env, stdout=log, stderr=subprocess.STDOUT
            )
        for name, port in (("wsgi", wsgi_port), ("asgi", asgi_port),
                           ("proxy", proxy_port)):  # fmt: skip
            if stack.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited: see {folder / (name + '.log')}")
            wait_for_port(port, name, timeout=timeout)
        yield stack
    finally:
        for proc in stack.processes.values():
            process_stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/apex-stack"))
    parser.add_argument("--wsgi", choices=WSGI_SERVERS, default="granian")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--static-root", type=Path, required=True)
    args = parser.parse_args()
    with production_shape(
        args.dir,
        dict(os.environ),
        static_root=args.static_root,
        wsgi=args.wsgi,
        wsgi_workers=args.workers,
        wsgi_threads=args.threads,
    ) as stack:
        print(f"serving on http://{stack.address}", flush=True)
        stop = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # after the children
        signal.sigwait(stop)


if __name__ == "__main__":
    main()
