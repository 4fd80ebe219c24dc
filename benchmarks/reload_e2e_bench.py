"""Hot reload across serving processes, end to end (issue 6).

Against a running multi-worker server (``serving_stack_bench.py serve``):
publishes a copy of the current artifact version under a new name, keeps a
load of ``GET /v1/recommendations/user/{id}`` running from threads, asks ONE
worker to ``POST /v1/artifacts/reload {"version": <new>}`` with a staff key,
and watches ``meta.artifact_version`` of the load's answers (fresh
connections, which the kernel spreads over the workers): the last answer
from the old version after the reload request tells how long the other
workers took to follow. Prints that, the answers per version and the number
of failed requests (target: 0).

Needs the server's environment (``source /tmp/httpbench/env.sh``).

    python benchmarks/reload_e2e_bench.py --base-url http://127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def publish_copy() -> tuple[str, str]:
    """A new version with the current one's files; returns (old, new)."""
    from django.conf import settings

    from recommendations.serving.artifacts import ArtifactStore, read_manifest

    store = ArtifactStore(settings.APEX_ARTIFACTS_DIR)
    old = store.require_current()
    source = store.path(old)
    staging = store.begin_version()
    for path in source.rglob("*"):
        if path.is_file() and path.name != "manifest.json":
            target = staging / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    fields = read_manifest(source).model_dump(
        exclude={"version", "created", "files"}, mode="json"
    )
    fields["notes"] = {**fields.get("notes", {}), "copied_from": old}
    return old, store.commit(staging, fields).version


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="s of load after the reload request")  # fmt: skip
    args = parser.parse_args()
    import django

    django.setup()
    from serving_http_bench import own_api_keys, staff_api_key, users_with_history

    base = args.base_url.rstrip("/")
    users = users_with_history(50, 0)
    keys = own_api_keys(users)
    staff = {"Authorization": f"Api-Key {staff_api_key()}"}
    old, new = publish_copy()
    print(f"current {old}; published {new}")

    stop = threading.Event()
    outcomes: dict[str, int] = {}
    answers: list[tuple[float, str | None]] = []  # (time, version) of 200s
    lock = threading.Lock()

    def load(offset: int) -> None:
        i = offset
        while not stop.is_set():
            user = users[i % len(users)]
            i += 1
            status, body = _get(
                f"{base}/v1/recommendations/user/{user}?n=10",
                {"Authorization": f"Api-Key {keys[user]}"},
            )
            meta = body.get("meta", {})
            version = meta.get("artifact_version")
            key = (
                f"http_{status}" if status != 200
                else "fallback" if meta.get("fallback")
                else f"ok:{version}"
            )  # fmt: skip
            with lock:
                outcomes[key] = outcomes.get(key, 0) + 1
                if status == 200:
                    answers.append((time.perf_counter(), version))

    threads = [threading.Thread(target=load, args=(k * 7,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(3)
    started = time.perf_counter()
    request = urllib.request.Request(
        f"{base}/v1/artifacts/reload", data=json.dumps({"version": new}).encode(),
        headers={**staff, "Content-Type": "application/json"}, method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=120) as response:
        answer = json.loads(response.read())
    answered = time.perf_counter() - started
    print(f"reload answered in {answered:.2f} s (scope {answer['scope']})")
    time.sleep(args.timeout)
    stop.set()
    for t in threads:
        t.join()
    old_after = [at - started for at, v in answers if v == old and at > started]
    last_old = max(old_after, default=0.0)
    tail = [v for at, v in answers if at - started > last_old]
    converged = last_old if tail and all(v == new for v in tail) else None
    failed = sum(v for k, v in outcomes.items() if not k.startswith("ok:"))
    took = f"{converged:.2f} s" if converged is not None else "never"
    print(
        f"last answer from {old}: {took} after the reload request "
        f"({len(old_after)} old answers after it, {len(tail)} new ones since)"
    )
    print(f"recommendation requests during the reload: {outcomes}; failed {failed}")
    return 0 if converged is not None and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
