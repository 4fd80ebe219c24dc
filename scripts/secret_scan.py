"""No secret in the repository: detect-secrets over every tracked file.

(Tracked: ``git ls-files``, plus new files git does not ignore.)

``make test`` runs this before the suite (``scripts/run_tests.py``). Every
finding must be in ``.secrets.baseline``, the reviewed list of things that
look like secrets and are not (test fixtures such as the stripe-mock and
webhook test values, the ``.env.example`` placeholders, dataset checksums);
anything else fails the run, named by file and line. Findings are compared
by file, type and a hash of the value, so a baseline entry survives its line
moving, but not a changed value.

    python scripts/secret_scan.py                    # check (exit 1 on a new finding)
    python scripts/secret_scan.py --update-baseline  # after reviewing every finding

A false positive in a file you own can instead carry the inline comment
``pragma: allowlist secret`` on its line.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
from pathlib import Path

from detect_secrets import SecretsCollection
from detect_secrets.core import baseline as ds_baseline
from detect_secrets.settings import default_settings, transient_settings

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ".secrets.baseline"


def tracked_files(root: Path = ROOT) -> list[str]:
    """Every file git tracks, and every new one it does not ignore (caught
    before it is committed); relative paths, the baseline itself excepted."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [
        name
        for name in listing.split("\0")
        if name and name != BASELINE and (root / name).is_file()
    ]


def _scan(files: list[str]) -> SecretsCollection:
    found = SecretsCollection()
    found.scan_files(*files)
    return found


def new_findings(root: Path = ROOT) -> list[tuple[str, int, str]]:
    """(file, line, type) of every finding not in the baseline."""
    baseline = ds_baseline.load_from_file(str(root / BASELINE))
    # detect-secrets names files relative to the working directory
    with contextlib.chdir(root), transient_settings(baseline):
        known = SecretsCollection.load_from_baseline(baseline)
        current = _scan(tracked_files(root))
    fresh = current - known
    return sorted((name, secret.line_number, secret.type) for name, secret in fresh)


def update_baseline(root: Path = ROOT) -> int:
    with contextlib.chdir(root), default_settings():
        current = _scan(tracked_files(root))
        path = root / BASELINE
        if path.exists():
            current.merge(
                SecretsCollection.load_from_baseline(
                    ds_baseline.load_from_file(str(path))
                )
            )  # keeps the audit marks of known entries
        ds_baseline.save_to_file(current, str(path))
    return sum(1 for _ in current)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--update-baseline",
        action="store_true",
        help="rewrite .secrets.baseline from the tracked files (review first)",
    )
    args = parser.parse_args(argv)
    if args.update_baseline:
        count = update_baseline()
        print(f"{BASELINE}: {count} reviewed findings")
        return 0
    findings = new_findings()
    for name, line, kind in findings:
        print(f"{name}:{line}: possible secret ({kind})", file=sys.stderr)
    if findings:
        print(
            f"{len(findings)} possible secret(s) not in {BASELINE}. Remove the "
            "secret (and rotate it), or, for a test value, add "
            "`# pragma: allowlist secret` to its line or review it and run "
            "`python scripts/secret_scan.py --update-baseline`.",
            file=sys.stderr,
        )
        return 1
    print(f"no secret in {len(tracked_files())} tracked files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
