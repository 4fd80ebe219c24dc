"""Versioned serving artifacts on disk: ``<root>/<version>/`` + ``manifest.json``.

A training run writes into a staging folder (``begin_version``), then
``commit`` checksums every file, writes the manifest and renames the folder
into place in one step, so a reader never sees a half-written version. The
``current`` pointer is a symlink replaced with ``os.replace`` (atomic on POSIX);
where symlinks are unavailable a ``CURRENT`` text file, also replaced
atomically, stands in. ``verify`` recomputes every checksum and reports what
differs instead of raising, because health checks must describe, not fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rest_framework import status

from apex_site.errors import ApplicationError
from recommendations.errors import RecommendationsErrorCode

MANIFEST_NAME = "manifest.json"
CURRENT_LINK = "current"
CURRENT_FILE = "CURRENT"
STAGING_PREFIX = ".staging-"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_RESERVED = {CURRENT_LINK, CURRENT_FILE}
_CHUNK = 1 << 20


# ---------------------------------------------------------------- errors
class ArtifactError(ApplicationError):
    """Base of every artifact-store failure (renders in the API error shape)."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE


class ArtifactRootMissing(ArtifactError):
    def __init__(self, root: Path) -> None:
        super().__init__(
            f"The artifacts folder {root} does not exist: train a model first "
            "(manage.py train) or set APEX_ARTIFACTS_DIR.",
            code=RecommendationsErrorCode.ARTIFACTS_ROOT_MISSING,
            detail={"root": str(root)},
        )


class NoCurrentVersion(ArtifactError):
    def __init__(self, root: Path) -> None:
        super().__init__(
            f"No current artifact version in {root}.",
            code=RecommendationsErrorCode.NO_CURRENT_ARTIFACTS,
            detail={"root": str(root)},
        )


class ArtifactVersionNotFound(ArtifactError):
    status_code = status.HTTP_404_NOT_FOUND

    def __init__(self, root: Path, version: str) -> None:
        super().__init__(
            f"No artifact version {version!r} in {root}.",
            code=RecommendationsErrorCode.ARTIFACT_VERSION_NOT_FOUND,
            detail={"root": str(root), "version": version},
        )


class ArtifactManifestError(ArtifactError):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"The manifest {path} is unreadable: {reason}",
            code=RecommendationsErrorCode.ARTIFACT_MANIFEST_INVALID,
            detail={"path": str(path), "reason": reason},
        )


class ArtifactCommitError(ArtifactError):
    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(
            message, code=RecommendationsErrorCode.ARTIFACT_COMMIT_FAILED, detail=detail
        )


# ---------------------------------------------------------------- manifest
class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class Manifest(BaseModel):
    """What ``manifest.json`` holds. ``version``, ``created`` and ``files`` are
    written by ``commit``; the rest comes from the training run.

    ``tiers`` maps a tier name (``pytorch``/``onnx``/``content``) to the files
    that tier needs; a tier missing from a non-empty map counts as missing
    artifacts and triggers a downgrade. ``notes`` is free-form.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    created: datetime
    data_snapshot: dict[str, Any] | str = ""
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    onnx_opset: int | None = None
    tiers: dict[str, list[str]] = Field(default_factory=dict)
    notes: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, FileEntry]


# ---------------------------------------------------------------- verification
@dataclass(frozen=True)
class Mismatch:
    path: str
    expected: str | int
    actual: str | int


@dataclass(frozen=True)
class VerifyReport:
    """Result of checking a version folder against its manifest."""

    version: str
    missing: list[str] = field(default_factory=list)
    size_mismatches: list[Mismatch] = field(default_factory=list)
    checksum_mismatches: list[Mismatch] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    manifest_error: str | None = None
    checked_files: int = 0
    checked_bytes: int = 0
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return not (
            self.missing
            or self.size_mismatches
            or self.checksum_mismatches
            or self.unexpected
            or self.manifest_error
        )

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self)}


def sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _walk_files(folder: Path) -> dict[str, Path]:
    """Every regular file under ``folder`` (relative POSIX path -> path),
    the manifest excluded. Symlinks and special files are refused: a checksum
    of a link target outside the folder would prove nothing."""
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath)
        for name in dirnames:
            if (base / name).is_symlink():
                raise ArtifactCommitError(
                    f"{base / name} is a symlink; artifacts must be plain files.",
                    path=str(base / name),
                )
        for name in filenames:
            path = base / name
            rel = path.relative_to(folder).as_posix()
            if rel == MANIFEST_NAME:
                continue
            if path.is_symlink() or not path.is_file():
                raise ArtifactCommitError(
                    f"{path} is not a plain file; artifacts must be plain files.",
                    path=str(path),
                )
            found[rel] = path
    return found


def read_manifest(version_dir: Path) -> Manifest:
    path = version_dir / MANIFEST_NAME
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise ArtifactManifestError(path, "file not found") from None
    except OSError as exc:
        raise ArtifactManifestError(path, str(exc)) from None
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
        raise ArtifactManifestError(path, errors) from None


def verify_dir(version_dir: Path, version: str | None = None) -> VerifyReport:
    """Compare the files under ``version_dir`` with its manifest."""
    started = time.perf_counter()
    version = version or version_dir.name

    def elapsed() -> float:
        return round((time.perf_counter() - started) * 1e3, 2)

    try:
        manifest = read_manifest(version_dir)
    except ArtifactManifestError as exc:
        return VerifyReport(
            version=version, manifest_error=exc.detail["reason"], duration_ms=elapsed()
        )
    try:
        on_disk = _walk_files(version_dir)
    except ArtifactCommitError as exc:
        return VerifyReport(
            version=version, manifest_error=exc.message, duration_ms=elapsed()
        )
    missing, sizes, sums = [], [], []
    checked = checked_bytes = 0
    for rel, entry in sorted(manifest.files.items()):
        path = on_disk.get(rel)
        if path is None:
            missing.append(rel)
            continue
        try:
            size = path.stat().st_size
            if size != entry.size:
                sizes.append(Mismatch(rel, entry.size, size))
                continue
            digest = sha256_file(path)
        except OSError:
            missing.append(rel)
            continue
        checked += 1
        checked_bytes += size
        if digest != entry.sha256:
            sums.append(Mismatch(rel, entry.sha256, digest))
    unexpected = sorted(set(on_disk) - set(manifest.files))
    return VerifyReport(
        version=version,
        missing=missing,
        size_mismatches=sizes,
        checksum_mismatches=sums,
        unexpected=unexpected,
        checked_files=checked,
        checked_bytes=checked_bytes,
        duration_ms=elapsed(),
    )


# ---------------------------------------------------------------- the store
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # platforms that cannot open folders
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_version_name(version: str) -> str:
    if not _VERSION_RE.match(version) or version in _RESERVED:
        raise ArtifactCommitError(
            f"{version!r} is not a valid artifact version name "
            "(letters, digits, '.', '_' and '-'; not 'current').",
            version=version,
        )
    return version


class ArtifactStore:
    """The versions under one artifacts root and the ``current`` pointer."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r})"

    # ------------------------------------------------------------ writing
    def begin_version(self, version: str | None = None) -> Path:
        """A fresh staging folder to write a version into; ``commit`` publishes it.

        Without a name the version is the UTC time (``20261127T021652Z``), with
        a numeric suffix if that name is taken.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        if version is None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            version, n = stamp, 1
            while (self.root / version).exists() or any(
                self.root.glob(f"{STAGING_PREFIX}{version}.*")
            ):
                n += 1
                version = f"{stamp}-{n}"
        _check_version_name(version)
        if (self.root / version).exists():
            raise ArtifactCommitError(
                f"Artifact version {version!r} already exists.", version=version
            )
        staging = self.root / f"{STAGING_PREFIX}{version}.{secrets.token_hex(4)}"
        staging.mkdir()
        return staging

    @staticmethod
    def staging_version(staging: Path) -> str:
        name = Path(staging).name
        if (
            not name.startswith(STAGING_PREFIX)
            or "." not in name[len(STAGING_PREFIX) :]
        ):
            raise ArtifactCommitError(
                f"{staging} is not a staging folder made by begin_version().",
                path=str(staging),
            )
        return name[len(STAGING_PREFIX) :].rsplit(".", 1)[0]

    def commit(self, staging: Path, manifest_fields: dict[str, Any]) -> Manifest:
        """Checksum every file in ``staging``, write the manifest, publish it.

        ``manifest_fields`` holds everything but ``version``, ``created`` and
        ``files`` (the store writes those). The rename into ``<root>/<version>``
        is a single ``os.rename`` on the same filesystem.
        """
        staging = Path(staging)
        version = self.staging_version(staging)
        if staging.parent.resolve() != self.root.resolve() or not staging.is_dir():
            raise ArtifactCommitError(
                f"{staging} is not a staging folder of {self.root}.",
                path=str(staging),
            )
        reserved = {"version", "created", "files"} & set(manifest_fields)
        if reserved:
            raise ArtifactCommitError(
                "commit() writes version, created and files itself; "
                f"remove {sorted(reserved)} from the manifest fields.",
                fields=sorted(reserved),
            )
        if (staging / MANIFEST_NAME).exists():
            raise ArtifactCommitError(
                f"{staging / MANIFEST_NAME} exists; commit() writes the manifest.",
                path=str(staging / MANIFEST_NAME),
            )
        files = {
            rel: FileEntry(sha256=sha256_file(path), size=path.stat().st_size)
            for rel, path in sorted(_walk_files(staging).items())
        }
        try:
            manifest = Manifest(
                version=version,
                created=datetime.now(UTC),
                files=files,
                **manifest_fields,
            )
        except ValidationError as exc:
            raise ArtifactCommitError(
                "The manifest fields are invalid.", errors=exc.errors()
            ) from None
        for rel in (p for paths in manifest.tiers.values() for p in paths):
            if rel not in files:
                raise ArtifactCommitError(
                    f"The manifest's tiers name {rel!r}, which is not in the version.",
                    path=rel,
                )
        tmp = staging / f".{MANIFEST_NAME}.tmp"
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(manifest.model_dump_json(indent=2))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, staging / MANIFEST_NAME)
        target = self.root / version
        if target.exists():
            raise ArtifactCommitError(
                f"Artifact version {version!r} already exists.", version=version
            )
        os.rename(staging, target)
        _fsync_dir(self.root)
        return manifest

    def abort(self, staging: Path) -> None:
        """Throw a staging folder away (a failed training run)."""
        self.staging_version(staging)
        shutil.rmtree(staging, ignore_errors=True)

    # ------------------------------------------------------------ the pointer
    def set_current(self, version: str) -> None:
        """Point ``current`` at ``version`` atomically."""
        self.manifest(version)  # exists and is readable, or a clear error
        link = self.root / CURRENT_LINK
        tmp = self.root / f".{CURRENT_LINK}.{secrets.token_hex(4)}"
        try:
            os.symlink(version, tmp, target_is_directory=True)
        except (OSError, NotImplementedError):
            self._set_current_file(version)
            return
        try:
            os.replace(tmp, link)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        (self.root / CURRENT_FILE).unlink(missing_ok=True)
        _fsync_dir(self.root)

    def _set_current_file(self, version: str) -> None:
        tmp = self.root / f".{CURRENT_FILE}.{secrets.token_hex(4)}"
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(version + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.root / CURRENT_FILE)
        _fsync_dir(self.root)

    def current_version(self) -> str | None:
        """The version ``current`` names, or None when nothing is current."""
        self._require_root()
        link = self.root / CURRENT_LINK
        if link.is_symlink():
            return Path(os.readlink(link)).name
        marker = self.root / CURRENT_FILE
        if marker.is_file():
            return marker.read_text(encoding="utf-8").strip() or None
        return None

    def require_current(self) -> str:
        version = self.current_version()
        if version is None:
            raise NoCurrentVersion(self.root)
        return version

    # ------------------------------------------------------------ reading
    def _require_root(self) -> None:
        if not self.root.is_dir():
            raise ArtifactRootMissing(self.root)

    def path(self, version: str) -> Path:
        self._require_root()
        if not _VERSION_RE.match(version) or version in _RESERVED:
            raise ArtifactVersionNotFound(self.root, version)
        folder = self.root / version
        if not folder.is_dir() or folder.is_symlink():
            raise ArtifactVersionNotFound(self.root, version)
        return folder

    def manifest(self, version: str) -> Manifest:
        return read_manifest(self.path(version))

    def versions(self) -> list[str]:
        """Committed versions, oldest first (by the manifest's ``created``)."""
        self._require_root()
        found: list[tuple[datetime, str]] = []
        for entry in os.scandir(self.root):
            if (
                entry.name.startswith(".")
                or entry.name in _RESERVED
                or not entry.is_dir(follow_symlinks=False)
                or not _VERSION_RE.match(entry.name)
                or not os.path.exists(os.path.join(entry.path, MANIFEST_NAME))
            ):
                continue
            try:
                created = read_manifest(Path(entry.path)).created
            except ArtifactManifestError:
                created = datetime.fromtimestamp(entry.stat().st_mtime, UTC)
            found.append((created, entry.name))
        return [name for _, name in sorted(found)]

    def verify(self, version: str | None = None) -> VerifyReport:
        """Check every file of ``version`` (default: current) against the manifest."""
        version = version or self.require_current()
        return verify_dir(self.path(version), version)

    def prune(self, keep: int, protect: Iterable[str] = ()) -> list[str]:
        """Delete all but the ``keep`` newest versions; never the current one
        nor any in ``protect`` (e.g. a version a serving process still uses)."""
        if keep < 0:
            raise ValueError("keep must be >= 0")
        spared = {self.current_version(), *protect}
        versions = self.versions()
        kept = set(versions[len(versions) - keep :] if keep else [])
        doomed = [v for v in versions if v not in kept and v not in spared]
        for version in doomed:
            # Rename first so a half-deleted folder never looks like a version.
            trash = self.root / f".trash-{version}.{secrets.token_hex(4)}"
            os.rename(self.root / version, trash)
            shutil.rmtree(trash)
        return doomed


def manifest_as_json(manifest: Manifest) -> dict[str, Any]:
    return json.loads(manifest.model_dump_json())
