"""File access for a manifest root: a folder on disk, or a commit of a git repository.

The loader only sees root-relative POSIX paths. A tree never hands out anything outside its root:
``resolve`` answers where a path really leads (following symlinks) and ``None`` when that is outside,
so the loader can refuse it with a clear message instead of reading it.

Symlinks are followed only while they stay inside the root (for a folder and for a git commit alike);
symlinked folders are not descended into by ``walk``.
"""

from __future__ import annotations

import os
import posixpath
import re
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import git  # only for the annotation: DirTree users never need gitpython

EXTENSIONS = (".yaml", ".yml", ".json")
_SYMLINK_MODE = 0o120000
_MAX_LINK_HOPS = 40


class MissingFolder(FileNotFoundError):
    """The manifest folder a commit does not have (renamed, or a wrong ``--path``)."""

    def __init__(self, folder: str, commit: str) -> None:
        super().__init__(f"no folder {folder!r} at commit {commit[:12]}")
        self.folder = folder


def is_candidate(path: str) -> bool:
    """A manifest file: the right extension and no hidden component (``.git``, ``.github``, ``.x.yaml``)."""
    parts = path.split("/")
    return path.lower().endswith(EXTENSIONS) and not any(p.startswith(".") for p in parts)


def normalize(base_dir: str, ref: str) -> str | None:
    """``ref`` taken relative to ``base_dir`` (both root-relative), or None if it leaves the root."""
    if not ref or ref.startswith("/") or "\\" in ref or re.match(r"^[A-Za-z]:", ref):
        return None
    joined = posixpath.normpath(posixpath.join(base_dir, ref))
    if joined == ".." or joined.startswith("../") or joined.startswith("/"):
        return None
    return "" if joined == "." else joined


@runtime_checkable
class Tree(Protocol):
    """What the loader needs from a manifest root."""

    revision: str | None

    def walk(self) -> Iterator[str]:
        """Root-relative POSIX paths of candidate files (and of symlinks to folders), hidden ones skipped."""
        ...

    def read(self, path: str) -> bytes:
        """The bytes of a file (symlinks followed; call ``resolve`` first to stay inside the root)."""
        ...

    def size(self, path: str) -> int:
        """Size in bytes of what ``read`` would return, without reading it."""
        ...

    def is_symlink(self, path: str) -> bool: ...

    def is_file(self, path: str) -> bool:
        """True when ``path`` (after symlinks) is a regular file inside the root."""
        ...

    def resolve(self, path: str) -> str | None:
        """Where ``path`` really leads after symlinks, root-relative; None when outside the root."""
        ...

    def describe(self) -> str: ...


class DirTree:
    """A manifest root on the local filesystem."""

    revision: str | None = None

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._real_root = Path(os.path.realpath(self.root))
        self._root_text = str(self.root)
        self._real_root_text = str(self._real_root)
        self._real_prefix = os.path.join(self._real_root_text, "")

    def describe(self) -> str:
        return str(self.root)

    def _abs(self, path: str) -> Path:
        return self.root / Path(*path.split("/")) if path else self.root

    def walk(self) -> Iterator[str]:
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"{self.root} is not a folder" if self.root.exists() else "no such folder"
            )
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            rel_dir = "" if rel_dir == "." else rel_dir
            keep = []
            for d in dirnames:
                if d.startswith("."):
                    continue
                rel = posixpath.join(rel_dir, d) if rel_dir else d
                if os.path.islink(os.path.join(dirpath, d)):
                    found.append(rel)  # reported (not followed) by the loader
                else:
                    keep.append(d)
            dirnames[:] = sorted(keep)
            for f in filenames:
                rel = posixpath.join(rel_dir, f) if rel_dir else f
                if is_candidate(rel):
                    found.append(rel)
        yield from sorted(found)

    def read(self, path: str) -> bytes:
        return self._abs(path).read_bytes()

    def size(self, path: str) -> int:
        return self._abs(path).stat().st_size

    def is_symlink(self, path: str) -> bool:
        return self._abs(path).is_symlink()

    def is_file(self, path: str) -> bool:
        try:
            return self.resolve(path) is not None and self._abs(path).is_file()
        except (OSError, ValueError):  # a name too long for the filesystem: no such file
            return False

    def resolve(self, path: str) -> str | None:
        # Plain strings, not Paths: the loader asks this three times of every file.
        full = os.path.join(self._root_text, *path.split("/")) if path else self._root_text
        try:
            real = os.path.realpath(full)
        except (OSError, ValueError):  # a NUL in the name, a name too long: it leads nowhere we can read
            return None
        if real == self._real_root_text:
            return ""
        if not real.startswith(self._real_prefix):
            return None
        return real[len(self._real_prefix) :].replace(os.sep, "/")


def _looks_like_url(repo: str) -> bool:
    return "://" in repo or bool(re.match(r"^[\w.-]+@[\w.-]+:", repo))


class GitTree:
    """A manifest root at one commit of a git repository, read from blobs without a work tree.

    ``repo`` is a local repository (bare or not) or a URL; a URL is cloned bare into ``cache_dir``
    (a new temporary folder by default). ``label`` is what problems about the whole root name it by.
    """

    def __init__(
        self,
        repo: str | Path | git.Repo,
        ref: str = "HEAD",
        subdir: str = "",
        cache_dir: str | Path | None = None,
        label: str | None = None,
    ) -> None:
        import git  # imported here so that DirTree users never need git installed

        self._owned = not isinstance(repo, git.Repo)  # a repository object given stays its owner's
        repo_s = str(repo) if self._owned else str(repo.git_dir)
        if not self._owned:
            self.repo = repo
        elif _looks_like_url(repo_s):
            target = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="ecs-gitops-clone-"))
            if (target / "HEAD").exists():
                self.repo = git.Repo(target)
                self.repo.remotes.origin.fetch("+refs/heads/*:refs/heads/*", force=True)
            else:
                self.repo = git.Repo.clone_from(repo_s, target, bare=True)
        else:
            self.repo = git.Repo(repo_s)
        self.url = repo_s
        self.label = label
        self.ref = ref
        commit = self.repo.commit(ref)
        self.revision: str | None = commit.hexsha
        message = commit.message
        # The commit's message (trailers such as ecs-gitops-allow-prune are read from it).
        self.message = message if isinstance(message, str) else message.decode("utf-8", "replace")
        self.subdir = subdir.strip("/")
        self._blobs: dict[str, object] = {}
        self._dirs: set[str] = {""}
        self._missing: MissingFolder | None = None  # no root: walk() raises it, the loader reports it
        root = commit.tree
        if self.subdir:
            try:
                root = root / self.subdir
            except KeyError:
                root = None
            if root is None or root.type != "tree":
                self._missing = MissingFolder(self.subdir, commit.hexsha)
                self.content_id = f"missing:{commit.hexsha}:{self.subdir}"
                return
        self._root = root
        # The git id of the manifest root's tree: equal ids, equal content.
        self.content_id = f"{root.hexsha}:{self.subdir}"
        # path -> (mode, blob) for every blob under the root; trees are implied by paths.
        self._blobs, self._dirs = _listing(self.repo, root, self.subdir)

    def close(self) -> None:
        """Stop the git processes (``git cat-file``) of the repository object this tree opened. Without it
        they live until the collector frees that object, which sits in a reference cycle. A repository
        object the tree was given is left to its owner."""
        if self._owned:
            self.repo.close()

    def blob_id(self, path: str) -> str | None:
        """The git blob id of the file ``path`` leads to (equal ids, equal bytes), None when there is none."""
        real = self.resolve(path)
        blob = self._blobs.get(real) if real is not None else None
        return str(blob.hexsha) if blob is not None else None  # type: ignore[attr-defined]

    def describe(self) -> str:
        """``label`` when given (the agent's clone gives one without its own path), else URL@sha:subdir."""
        if self.label is not None:
            return self.label
        where = f"{self.url}@{(self.revision or '')[:12]}"
        return f"{where}:{self.subdir}" if self.subdir else where

    def walk(self) -> Iterator[str]:
        if self._missing is not None:
            raise self._missing
        found = []
        for rel, blob in self._blobs.items():
            parts = rel.split("/")
            if any(p.startswith(".") for p in parts):
                continue
            if is_candidate(rel) or (blob.mode == _SYMLINK_MODE):  # type: ignore[attr-defined]
                if blob.mode == _SYMLINK_MODE and not is_candidate(rel):  # type: ignore[attr-defined]
                    # Only symlinks that lead to folders matter here (like DirTree.walk).
                    target = self.resolve(rel)
                    if target is not None and target not in self._dirs:
                        continue
                found.append(rel)
        yield from sorted(found)

    def is_symlink(self, path: str) -> bool:
        blob = self._blobs.get(path)
        return blob is not None and blob.mode == _SYMLINK_MODE  # type: ignore[attr-defined]

    def _parent_resolved(self, path: str) -> str | None:
        """Resolve the folders of ``path`` (they may be symlinks too), keeping the last component."""
        head, _, name = path.rpartition("/")
        if not head:
            return name
        parent = self.resolve(head)
        if parent is None:
            return None
        return posixpath.join(parent, name) if parent else name

    def resolve(self, path: str) -> str | None:
        current = path
        for _ in range(_MAX_LINK_HOPS):
            current_opt = self._parent_resolved(current) if "/" in current else current
            if current_opt is None:
                return None
            current = current_opt
            blob = self._blobs.get(current)
            if blob is None or blob.mode != _SYMLINK_MODE:  # type: ignore[attr-defined]
                return current
            target = blob.data_stream.read().decode("utf-8", "replace")  # type: ignore[attr-defined]
            nxt = normalize(posixpath.dirname(current), target)
            if nxt is None:
                return None
            current = nxt
        return None  # a symlink loop

    def is_file(self, path: str) -> bool:
        real = self.resolve(path)
        return real is not None and real in self._blobs and not self.is_symlink(real)

    def _blob(self, path: str):  # type: ignore[no-untyped-def]
        real = self.resolve(path)
        if real is None or real not in self._blobs:
            raise FileNotFoundError(path)
        return self._blobs[real]

    def read(self, path: str) -> bytes:
        return self._blob(path).data_stream.read()  # type: ignore[no-any-return]

    def size(self, path: str) -> int:
        return int(self._blob(path).size)


# The listings of the last few manifest-root trees read (path -> (blob id, mode), folders): a tick at an
# unchanged commit walks no tree.
_LISTINGS: OrderedDict[tuple[str, str, str], tuple[dict[str, tuple[bytes, int]], frozenset[str]]] = (
    OrderedDict()
)
_LISTINGS_KEPT = 4


def _listing(repo: Any, root: Any, subdir: str) -> tuple[dict[str, object], set[str]]:
    """Every blob (by path) and folder under ``root``, from a small cache keyed by the tree's id."""
    from git import Blob

    key = (str(repo.git_dir), str(root.hexsha), subdir)
    if key not in _LISTINGS:
        found: dict[str, tuple[bytes, int]] = {}
        dirs: set[str] = {""}
        for item in root.traverse():
            rel = item.path[len(subdir) + 1 :] if subdir else item.path
            if item.type == "tree":
                dirs.add(rel)
            elif item.type == "blob":
                found[rel] = (item.binsha, item.mode)
        _LISTINGS[key] = (found, frozenset(dirs))
        while len(_LISTINGS) > _LISTINGS_KEPT:
            _LISTINGS.popitem(last=False)
    _LISTINGS.move_to_end(key)
    listed, folders = _LISTINGS[key]
    prefix = f"{subdir}/" if subdir else ""
    blobs: dict[str, object] = {
        rel: Blob(repo, binsha, mode=mode, path=prefix + rel) for rel, (binsha, mode) in listed.items()
    }
    return blobs, set(folders)
