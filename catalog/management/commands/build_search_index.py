import os
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from catalog import selectors
from catalog.search import semantic


class Command(BaseCommand):
    help = (
        "Embed every movie (title, year, genres, keywords, overview) with "
        "all-MiniLM-L6-v2 and write the FAISS index that /v1/search/ai serves."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--out", help="index folder (default APEX_SEARCH_INDEX_DIR)"
        )
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument(
            "--if-missing",
            action="store_true",
            help="do nothing when an index already exists (used by bootstrap)",
        )

    def handle(self, *args, **options):
        started = time.monotonic()
        out_dir = Path(options["out"] or settings.APEX_SEARCH_INDEX_DIR)
        if options["if_missing"] and (out_dir / semantic.MANIFEST_FILE).exists():
            self.stdout.write(f"search index exists in {out_dir}: nothing to do")
            return
        lock = out_dir.with_name(out_dir.name + ".lock")
        if not _acquire(lock):
            self.stdout.write(f"another build holds {lock}: nothing to do")
            return
        try:
            self._build(out_dir, options["batch_size"], started)
        finally:
            lock.unlink(missing_ok=True)

    def _build(self, out_dir: Path, batch_size: int, started: float) -> None:
        documents = selectors.movie_documents()
        self.stdout.write(f"embedding {len(documents)} movies")
        last = [time.monotonic()]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] > 3 or done == total:
                last[0] = now
                rate = done / max(now - started, 1e-9)
                self.stdout.write(
                    f"  {done}/{total} ({rate:.0f}/s, ETA {(total - done) / rate:.0f}s)"
                )

        manifest = semantic.build_index(
            documents,
            out_dir=out_dir,
            batch_size=batch_size,
            progress=progress,
        )
        self.stdout.write(
            f"search index: {manifest['movies']} movies, {manifest['dimensions']} "
            f"dimensions, built in {manifest['seconds']}s"
        )


STALE_LOCK_SECONDS = 3600


def _acquire(lock: Path) -> bool:
    """One build at a time per folder (bootstrap may start one in the background)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        if time.time() - lock.stat().st_mtime > STALE_LOCK_SECONDS:
            lock.unlink(missing_ok=True)  # left behind by a killed build
    except FileNotFoundError:
        pass
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True
