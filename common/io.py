"""Saves that replace a set of files in a folder all at once: a crash leaves the old set or the new one, never a mix.

A save (``FolderSave``) writes every new file into a hidden staging folder inside the target folder and fsyncs
them, then commits by writing a journal there: the files to move into place and the old files to delete. Only
then are files moved (renames within one file system) and old ones deleted. A save interrupted before the commit
has touched nothing the folder held: the next save of the folder discards its staging folder. One interrupted
after the commit is finished by the next save (roll forward); until then readers see the new files through the
journal (``visible_file``), without writing to the folder, so loading works in read-only and shared folders too.
Saves of one folder exclude each other with a lock on the folder (where the platform has ``fcntl``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; saves of one folder must then not run at the same time
    fcntl = None

STAGING_NAME = ".rosettazoo-saving"
JOURNAL_NAME = ".committed.json"  # in the staging folder; hidden, so no file a save stages can have its name
# The temporaries of rosettazoo's earlier per-file saves (tempfile.mkstemp(prefix=".tmp-", suffix="-" + name)).
_LEGACY_TEMPORARY = re.compile(r"\.tmp-[a-z0-9_]{8}-(.+)")


def _is_plain_name(name: object) -> bool:
    """A file name that stays in its folder: no separator, not "." or ".."."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and os.path.basename(name) == name)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)  # Windows flushes writable handles only
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(path: str) -> None:
    """Make renames, creations and deletions in ``path`` durable (POSIX; Windows cannot open a folder)."""
    if os.name != "nt":
        _fsync_file(path)


def _write_text(path: str, text: str) -> None:
    with open(path, "x", encoding="utf-8") as f:  # created with the umask's permissions
        f.write(text)


# ---------------------------------------------------------------------------------------------------- the journal


def _read_journal(folder: str) -> dict[str, list[str]] | None:
    """The committed, unfinished save of ``folder``: {"move": names, "delete": names}, or None when there is none."""
    path = os.path.join(folder, STAGING_NAME, JOURNAL_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            journal = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        journal = err
    lists = [journal.get(key) for key in ("move", "delete")] if isinstance(journal, dict) else [None]
    if not all(isinstance(names, list) and all(map(_is_plain_name, names)) for names in lists):
        raise OSError(
            f"{path} is not a save journal that rosettazoo wrote ({journal!r}); the folder {folder} holds an "
            f"unfinished save in an unknown state: check its files, then delete {os.path.join(folder, STAGING_NAME)}"
        )
    return journal


def visible_file(folder: str, name: str) -> str | None:
    """The path a reader should open for the file ``name`` of ``folder``, or None when it has none.

    While a committed save is unfinished, its new files are read from the staging folder and the files it
    deletes are absent, so a reader sees the whole new checkpoint.
    """
    journal = _read_journal(folder)
    if journal is not None:
        if name in journal["delete"]:
            return None
        staged = os.path.join(folder, STAGING_NAME, name)
        if name in journal["move"] and os.path.isfile(staged):
            return staged
    path = os.path.join(folder, name)
    return path if os.path.isfile(path) else None


def _roll_forward(folder: str, journal: dict[str, list[str]]) -> None:
    """Move a committed save's files into place, delete the old ones, then drop the staging folder. Idempotent,
    so a roll forward interrupted in turn is finished by the next one."""
    staging = os.path.join(folder, STAGING_NAME)
    for name in journal["move"]:
        staged = os.path.join(staging, name)
        if os.path.lexists(staged):  # else moved by the interrupted run
            os.replace(staged, os.path.join(folder, name))
    for name in journal["delete"]:
        try:
            os.remove(os.path.join(folder, name))
        except FileNotFoundError:
            pass
    _fsync_folder(folder)  # the moves are durable before the journal that would redo them is gone
    os.remove(os.path.join(staging, JOURNAL_NAME))
    shutil.rmtree(staging)
    _fsync_folder(folder)


def _discard_staging(folder: str) -> None:
    shutil.rmtree(os.path.join(folder, STAGING_NAME), ignore_errors=True)


def finish_interrupted_save(folder: str) -> None:
    """Complete a committed save of ``folder`` that was interrupted, or discard an uncommitted one's files."""
    if not os.path.isdir(os.path.join(folder, STAGING_NAME)):
        return
    journal = _read_journal(folder)
    if journal is None:
        _discard_staging(folder)
        _fsync_folder(folder)
    else:
        _roll_forward(folder, journal)


# ---------------------------------------------------------------------------------------------------- saving


def _lock(folder: str) -> int | None:
    """An exclusive lock on ``folder`` for one save (released by the OS if the process dies)."""
    if fcntl is None:
        return None
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BlockingIOError(f"another save to {folder} is in progress; wait for it to finish") from None
    return fd


def _unlock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock


def _prepare_folder(folder: str | os.PathLike) -> str:
    """``folder`` as a string, created if missing; a clear error when it is a file."""
    folder = os.fspath(folder)
    if os.path.isdir(folder):
        return folder
    if os.path.exists(folder):
        raise NotADirectoryError(
            f"cannot save to {folder}: it is a file, and a save writes a folder of files; pass the path of a folder "
            f"(it is created if missing)"
        )
    os.makedirs(folder, exist_ok=True)
    return folder


class FolderSave:
    """Replace the files of ``folder`` that ``owns(name)`` claims, as a whole, by the files staged in a ``with``
    block: on leaving it normally they all replace the owned files at once (owned files not staged are deleted);
    on an exception nothing in the folder changes.

    Refuses (FileExistsError, ending with ``hint``) when the folder holds an owned file, unless ``overwrite``.
    Only names ``owns`` claims are ever replaced or deleted, and only inside ``folder``.
    """

    def __init__(self, folder: str | os.PathLike, owns: Callable[[str], bool], *, overwrite: bool = False,
                 hint: str = "pass overwrite=True to replace it"):
        self.folder = os.fspath(folder)
        self.owns = owns
        self.overwrite = overwrite
        self.hint = hint
        self._staging = os.path.join(self.folder, STAGING_NAME)
        self._staged: list[str] = []
        self._old: list[str] = []
        self._lock_fd: int | None = None
        self._file_mode = 0o644

    def __enter__(self) -> FolderSave:
        _prepare_folder(self.folder)
        self._lock_fd = _lock(self.folder)
        try:
            finish_interrupted_save(self.folder)
            self._old = self._owned_files()
            if self._old and not self.overwrite:
                raise FileExistsError(f"{self.folder} already holds {', '.join(self._old)}; {self.hint}")
            self._remove_legacy_temporaries()
            os.mkdir(self._staging)
            # A folder is created with 0o777 less the umask, so this is the mode the umask gives new files (read
            # without os.umask, which would change it for every thread of the process).
            self._file_mode = os.stat(self._staging).st_mode & 0o666
        except BaseException:
            _unlock(self._lock_fd)
            raise
        return self

    def _owned_files(self) -> list[str]:
        return sorted(name for name in os.listdir(self.folder)
                      if self.owns(name) and not os.path.isdir(os.path.join(self.folder, name)))

    def _remove_legacy_temporaries(self) -> None:
        for name in os.listdir(self.folder):
            match = _LEGACY_TEMPORARY.fullmatch(name)
            if match and self.owns(match.group(1)):
                os.remove(os.path.join(self.folder, name))

    def stage(self, name: str, write: Callable[[str], None]) -> None:
        """Call ``write(path)`` to create the new file ``name`` at ``path`` (in the staging folder), and fsync it."""
        if not (_is_plain_name(name) and self.owns(name)) or name in self._staged:
            raise ValueError(f"this save cannot write {name!r}: not a file it owns, or written twice")
        path = os.path.join(self._staging, name)
        self._staged.append(name)
        write(path)
        os.chmod(path, self._file_mode)  # some writers (safetensors) create their files 0600
        _fsync_file(path)

    def stage_text(self, name: str, text: str) -> None:
        self.stage(name, lambda path: _write_text(path, text))

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            if exc_type is not None:
                _discard_staging(self.folder)
                return
            journal = self._commit()
            _roll_forward(self.folder, journal)
        finally:
            _unlock(self._lock_fd)

    def _commit(self) -> dict[str, list[str]]:
        """Write the journal: from here on the new files are the folder's, even if the process dies."""
        try:
            for name in self._staged:
                if os.path.isdir(os.path.join(self.folder, name)):
                    raise IsADirectoryError(f"cannot save {name} to {self.folder}: a folder has that name; remove it")
            journal = {"move": self._staged, "delete": [n for n in self._old if n not in self._staged]}
            _fsync_folder(self._staging)  # the staged files' names are durable before the journal is
            pending = os.path.join(self._staging, JOURNAL_NAME + ".tmp")
            _write_text(pending, json.dumps(journal))
            _fsync_file(pending)
            os.replace(pending, os.path.join(self._staging, JOURNAL_NAME))  # the commit
        except BaseException:
            _discard_staging(self.folder)
            raise
        _fsync_folder(self._staging)
        return journal


def save_files(folder: str | os.PathLike, texts: dict[str, str], *, overwrite: bool = False,
               hint: str = "pass overwrite=True to replace it") -> None:
    """Replace the text files ``texts`` ({name: text}) of ``folder`` together, as one ``FolderSave``."""
    with FolderSave(folder, texts.__contains__, overwrite=overwrite, hint=hint) as save:
        for name, text in texts.items():
            save.stage_text(name, text)
