"""Output safety: atomic writes, one run per output (a lock), and folders that say whose they are.

The policy every command follows (DESIGN §4, docs/outputs.md):

- A file is written under a temporary sibling name and renamed when complete
  (:func:`atomic_path`), so an interrupted command never leaves a result that looks finished.
- An output folder is *claimed* for one command (:func:`claim_folder`): the marker file
  :data:`MARKER` says which command owns it and whether its run completed. An existing folder is
  reused only if its marker names the same command (an earlier or interrupted run), else refused
  unless ``overwrite``; with ``overwrite`` the command replaces only its own files and deletes
  nothing else.
- An output file (:func:`claim_files`) replaces an existing file only if a sidecar marker shows
  that this command wrote exactly those bytes, or with ``overwrite``; never an input file.
- An output inside an input cohort's image or label folder is refused (:func:`refuse_inside`).
- One run per output: an advisory ``flock`` held for the whole run, holding the holder's PID
  (:func:`hold_lock`). A second run fails at once naming the lock and its holder; a stale lock
  file left by a dead process is taken over with a note on stderr.

Writers call :func:`fault_point` between their write steps; tests register a hook there to
simulate a crash at every step (:func:`inject_faults`).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from attndilute import __version__
from attndilute.errors import AttnDiluteError

#: Marker of a claimed output folder: JSON ``{command, status, version, pid, started, finished}``.
MARKER = ".attndilute-run.json"
#: Lock file of a claimed folder (removed when the run ends).
LOCK = ".attndilute.lock"
#: Folders of a cohort that hold its images and labels (nnU-Net raw / MSD); flat: the root.
COHORT_FOLDERS = ("imagesTr", "labelsTr", "imagesTs", "labelsTs")
_DEBRIS = re.compile(r"^\..+\.(tmp|old)-\d+$")


class SimulatedCrash(BaseException):
    """Raised by an injected fault: like ``kill -9``, it skips every cleanup of :mod:`_io`."""


_fault_hook: Callable[[str], None] | None = None


#: ``NAME:K`` in this variable ends the process at once (``os._exit(70)``, no cleanup, like
#: ``kill -9``) at the K-th :func:`fault_point` called NAME: how tests crash a ``torchrun`` job,
#: whose ranks are separate processes, at a known step.
CRASH_ENV = "ATTNDILUTE_CRASH_AT"
_crash_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """A point between two write steps where a test may simulate a crash (no-op otherwise)."""
    if _fault_hook is not None:
        _fault_hook(name)
    target = os.environ.get(CRASH_ENV)
    if target:
        where, _, count = target.rpartition(":")
        if where == name:
            _crash_hits[name] = _crash_hits.get(name, 0) + 1
            if _crash_hits[name] >= int(count or 1):
                os._exit(70)


@contextlib.contextmanager
def inject_faults(hook: Callable[[str], None]) -> Iterator[None]:
    """Call ``hook(name)`` at every :func:`fault_point` while the block runs (tests only)."""
    global _fault_hook
    previous, _fault_hook = _fault_hook, hook
    try:
        yield
    finally:
        _fault_hook = previous


def is_writer() -> bool:
    """True on the process that writes outputs: rank 0 under torchrun, or a plain process."""
    return int(os.environ.get("RANK", "0")) == 0


# --- atomic files --------------------------------------------------------------------------------


def tmp_name(path: Path) -> Path:
    """The temporary sibling ``.NAME.tmp-PID`` that :func:`atomic_path` writes first."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def current_umask() -> int:
    """The process umask (read by setting it and restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success rename it to ``path``.

    On an exception the temporary is removed and ``path`` is left as it was. For folders
    (``is_dir=True``) the temporary folder is created for the caller, and an existing ``path``
    is replaced only once the new one is complete. Callers write only inside a folder they
    claimed (:func:`claim_folder`), so what is replaced is this command's own output.

    Example:
        >>> with atomic_path("out/table.csv") as tmp:   # doctest: +SKIP
        ...     frame.to_csv(tmp)
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise output_error(err, path.parent) from None
    tmp = tmp_name(path)
    remove(tmp)
    if is_dir:
        tmp.mkdir()
    try:
        yield tmp
    except SimulatedCrash:
        raise
    except BaseException:
        remove(tmp)
        raise
    if not is_dir and tmp.is_file() and not tmp.is_symlink():
        os.chmod(tmp, 0o666 & ~current_umask())  # a writer that used mkstemp leaves 0600
    fault_point(f"rename {path.name}")
    if is_dir and path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
        os.replace(tmp, path)
        remove(old)
    else:
        os.replace(tmp, path)


def remove(p: Path) -> None:
    """Delete a file, link or folder tree if it exists."""
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def write_json(path: Path, value: object) -> None:
    """Write ``value`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2) + "\n")


def check_writable(path: Path) -> None:
    """Refuse an output under a folder without write permission (also as root, who could write).

    ``path`` or its nearest existing ancestor must be a folder someone may write to: a folder a
    user made read-only (no ``w`` bit for anyone) says "not here", whoever runs the command.
    """
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return  # a file in the way: mkdir reports it
    mode = folder.stat().st_mode
    if not os.access(folder, os.W_OK) or not mode & 0o222:
        raise AttnDiluteError("the output folder is read-only", path=folder,
                              hint="make it writable, or choose another --out")


def output_error(err: OSError, path: Path) -> AttnDiluteError:
    """The one-line error for an output path the system refuses (read-only, a file, no space)."""
    reason = err.strerror or type(err).__name__
    return AttnDiluteError(f"cannot write the output ({reason})", path=path,
                           hint="choose a writable --out")


# --- locks ---------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _read_holder(path: Path, fd: int | None = None) -> dict:
    """The holder record of a lock file; through ``fd`` when we hold it (closing another fd to
    the file would drop our lock where ``flock`` is emulated with POSIX locks, as on NFS)."""
    try:
        raw = os.pread(fd, 4096, 0) if fd is not None else path.read_bytes()
        return json.loads(raw.decode() or "{}")
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def hold_lock(path: str | Path, what: str) -> Iterator[Path]:
    """Hold an exclusive advisory lock on the file ``path`` for the block.

    The file holds the holder's PID, host and ``what`` (the command). A second holder fails at
    once with :class:`AttnDiluteError` naming the lock and the holder. A lock file whose holder
    died (``kill -9``, a power cut) holds no ``flock`` any more: it is taken over, with a note on
    stderr. The file is removed when the block ends. On a file system that refuses ``flock``
    the block runs unprotected, with a note.

    Args:
        path: the lock file.
        what: what holds it, e.g. ``"attndilute adi"``.
    """
    import fcntl

    path = Path(path)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise output_error(err, path.parent) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _read_holder(path)
            who = f"PID {holder.get('pid', '?')} on {holder.get('host', '?')}, {holder.get('what', '?')}"
            raise AttnDiluteError(f"another run is writing this output: the lock {path} is held by {who}",
                                  hint="wait for it to finish, or choose another --out") from None
        except OSError as err:  # ENOLCK, ENOSYS: this file system has no flock
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            print(f"note: {path.parent} does not support file locks ({err.strerror}); "
                  "nothing stops a second run on this output", file=sys.stderr)
            yield path
            return
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed the file between our open and flock: retry
    try:
        stale = _read_holder(path, fd)
        if stale.get("pid") not in (None, os.getpid()):
            alive = stale.get("host") == socket.gethostname() and _pid_alive(int(stale["pid"]))
            state = "still running but no longer holding it" if alive else "no longer running"
            print(f"note: took over the lock {path} left by PID {stale['pid']} ({state})", file=sys.stderr)
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "what": what}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still holding it, so no one locks a file about to vanish
        os.close(fd)


def missing_parents(path: Path) -> list[Path]:
    """The folders ``path.mkdir(parents=True)`` would create, outermost first."""
    created = []
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        created.append(folder)
        folder = folder.parent
    return created[::-1]


def remove_if_empty(folders: list[Path]) -> None:
    """Remove the folders a failed run created, innermost first, as long as they are empty."""
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


# --- inputs --------------------------------------------------------------------------------------


def refuse_inside(out: str | Path, *, cohorts: Iterable[str | Path] = (),
                  files: Iterable[str | Path] = ()) -> None:
    """Refuse an output inside an input cohort, or equal to an input file or folder.

    Args:
        out: the output file or folder.
        cohorts: input ``--data`` folders: ``out`` may not be the folder itself, nor lie in its
            image/label folders (:data:`COHORT_FOLDERS`; a flat cohort keeps its images in the
            folder itself, so nothing may be written inside it).
        files: other inputs (checkpoints, CSVs, prediction folders): ``out`` may not be one of them.
    """
    target = Path(out).expanduser().resolve()
    for cohort in cohorts:
        root = Path(cohort).expanduser().resolve()
        flat = not any((root / sub).is_dir() for sub in COHORT_FOLDERS)
        protected = [root] if flat else [root / sub for sub in COHORT_FOLDERS]
        if target == root or any(target == p or p in target.parents for p in protected):
            raise AttnDiluteError("the output lies inside the input cohort and could replace its images or "
                                  "labels", path=out, hint=f"choose an --out outside {root}")
    for item in files:
        if target == Path(item).expanduser().resolve():
            raise AttnDiluteError("the output is one of this command's inputs", path=out,
                                  hint="choose another --out")


# --- claimed folders ------------------------------------------------------------------------------


@dataclass
class Claim:
    """A folder claimed for one run of one command.

    Attributes:
        path: the folder.
        command: the owning command, e.g. ``"adi"``.
        created: the folder did not exist before this run.
        earlier: it held an earlier (complete or interrupted) run of the same command.
        prior: the marker found when the claim began (restored if this run fails before writing).
        found: the names the folder held when the claim began.
    """

    path: Path
    command: str
    created: bool
    earlier: bool
    prior: dict | None = None
    found: frozenset[str] = frozenset()


def read_marker(folder: Path) -> dict | None:
    """The marker of a claimed folder, or None (no marker, or not one of ours)."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and isinstance(marker.get("command"), str) else None


def _stamp() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@contextlib.contextmanager
def claim_folder(path: str | Path, command: str, *, overwrite: bool = False,
                 cohorts: Sequence[str | Path] = (), files: Sequence[str | Path] = ()) -> Iterator[Claim]:
    """Claim ``path`` as the output folder of one run of ``command`` for the block.

    Refused (one-line :class:`AttnDiluteError`) when ``path`` is a file, lies inside an input
    cohort, cannot be created, is locked by another run, or holds anything that no earlier run of
    ``command`` wrote (unless ``overwrite``). The marker is written when the claim starts
    (``status: running``) and completed when the block ends without error. On an error, a folder
    this run created and left holding nothing but its marker is removed again.

    Args:
        path: the output folder.
        command: the command that owns it (``"adi"``, ``"cka"``, ``"train"``, ...).
        overwrite: accept a folder that holds other files; only this command's files are replaced.
        cohorts, files: the run's inputs, see :func:`refuse_inside`.
    """
    path = Path(path).expanduser()
    refuse_inside(path, cohorts=cohorts, files=files)
    if path.exists() and not path.is_dir():
        raise AttnDiluteError("--out must be a folder, but a file of that name exists", path=path,
                              hint="choose another --out")
    check_writable(path)
    new_folders = missing_parents(path)
    created = bool(new_folders)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise output_error(err, path) from None
    try:
        with hold_lock(path / LOCK, f"attndilute {command}"):
            claim = _take(path, command, overwrite=overwrite, created=created)
            try:
                yield claim
            except SimulatedCrash:
                raise
            except BaseException:
                _undo(claim)
                raise
            write_json(path / MARKER, {**(read_marker(path) or {}), "status": "complete",
                                       "finished": _stamp()})
    except BaseException as err:
        if not isinstance(err, SimulatedCrash):
            remove_if_empty(new_folders)  # only folders this run created and left empty
        raise


def _debris(path: Path) -> list[Path]:
    """Temporary siblings (``.NAME.tmp-PID``, ``.NAME.old-PID``) that a killed run left in ``path``."""
    return [p for p in path.iterdir() if _DEBRIS.match(p.name)]


def _take(path: Path, command: str, *, overwrite: bool, created: bool) -> Claim:
    marker = read_marker(path)
    ours = marker is not None and marker["command"] == command
    for p in _debris(path):  # the lock is ours, so no live run writes them
        if ours or p.name.startswith(f".{MARKER}."):
            remove(p)
    others = sorted(p.name for p in path.iterdir() if p.name not in (LOCK, MARKER))
    if not ours and (others or marker is not None) and not overwrite:
        what = (f"an `attndilute {marker['command']}` run" if marker
                else f"files it did not write ({others[0]}, ...)")
        raise AttnDiluteError(f"the output folder holds {what}", path=path,
                              hint=f"choose another --out, or pass --overwrite to let `{command}` replace "
                                   "only its own files there")

    write_json(path / MARKER, {"command": command, "status": "running", "version": __version__,
                               "pid": os.getpid(), "started": _stamp(), "finished": None})
    return Claim(path, command, created=created, earlier=ours, prior=marker, found=frozenset(others))


def _undo(claim: Claim) -> None:
    """After an error: the marker goes back to what it was, unless this run left files to resume.

    A folder this command already owned, or one where this run wrote something, keeps its
    ``running`` marker (what it holds is an interrupted run of this command). Otherwise the
    folder gets its previous marker back, or none.
    """
    new = {p.name for p in claim.path.iterdir()} - claim.found - {LOCK, MARKER}
    if claim.earlier or new:
        return
    if claim.prior is None:
        remove(claim.path / MARKER)
    else:
        write_json(claim.path / MARKER, claim.prior)


# --- claimed files -------------------------------------------------------------------------------


def _sidecar(path: Path) -> Path:
    return path.with_name(f".{path.name}.attndilute.json")


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def claim_files(paths: Sequence[str | Path], command: str, *, overwrite: bool = False,
                cohorts: Sequence[str | Path] = (), files: Sequence[str | Path] = ()) -> Iterator[list[Path]]:
    """Claim output files of one run of ``command``; record what was written when the block ends.

    An existing file is replaced only if its sidecar marker (``.NAME.attndilute.json``) shows that
    ``command`` wrote exactly its current bytes, or with ``overwrite``; never when it is an input of
    the run. The first file's sidecar lock keeps a second run out. Write each file with
    :func:`atomic_path` inside the block.

    Args:
        paths: the output files.
        command: the owning command.
        overwrite: replace existing files that this command did not write.
        cohorts, files: the run's inputs, see :func:`refuse_inside`.
    """
    paths = [Path(p).expanduser() for p in paths]
    for p in paths:
        refuse_inside(p, cohorts=cohorts, files=files)
        if p.is_dir():
            raise AttnDiluteError("--out must be a file, but a folder of that name exists", path=p,
                                  hint="choose another --out")
    parent = paths[0].parent
    check_writable(parent)
    new_folders = missing_parents(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise output_error(err, parent) from None
    lock = paths[0].with_name(f".{paths[0].name}.lock")
    try:
        with hold_lock(lock, f"attndilute {command}"):
            for p in paths:
                if p.exists() and not overwrite and not _wrote(p, command):
                    raise AttnDiluteError(f"the output file exists and no earlier `attndilute {command}` "
                                          "wrote it", path=p, hint="choose another --out, or --overwrite")
            before = {p: _digest(p) if p.is_file() else None for p in paths}
            try:
                yield paths
            except SimulatedCrash:
                raise
            except BaseException:  # a file this run did write is this command's to replace next time
                _mark_written(paths, before, command)
                raise
            _mark_written(paths, before, command)
    except BaseException as err:
        if not isinstance(err, SimulatedCrash):
            remove_if_empty(new_folders)
        raise


def _mark_written(paths: list[Path], before: dict[Path, str | None], command: str) -> None:
    """Write the sidecar of every file whose bytes this run changed."""
    for p in paths:
        if p.is_file() and _digest(p) != before[p]:
            write_json(_sidecar(p), {"command": command, "sha256": _digest(p), "finished": _stamp()})


def _wrote(path: Path, command: str) -> bool:
    try:
        mark = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(mark, dict) and mark.get("command") == command and mark.get("sha256") == _digest(path)


#: zarr's warning that consolidated metadata is not yet in the v3 spec (xarray still reads it).
_ZARR_NOTE = "Consolidated metadata is currently not part"


def write_zarr(ds, path: str | Path) -> None:
    """An xarray Dataset as zarr v3 with consolidated metadata, atomically (``xr.open_zarr``
    opens it quietly); the one zarr writer of every command."""
    with atomic_path(Path(path), is_dir=True) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_ZARR_NOTE)
        ds.to_zarr(tmp, mode="w", zarr_format=3, consolidated=True)
