"""A folder on disk says where a path really leads, and refuses what leads outside it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.manifests.tree import DirTree


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "r" / "sub").mkdir(parents=True)
    (tmp_path / "r" / "a.yaml").write_text("a: 1\n")
    (tmp_path / "out.yaml").write_text("b: 1\n")
    os.symlink("../out.yaml", tmp_path / "r" / "leak.yaml")
    os.symlink("../a.yaml", tmp_path / "r" / "sub" / "in.yaml")
    os.symlink(str(tmp_path), tmp_path / "r" / "up")
    os.symlink("loop", tmp_path / "r" / "loop")
    return tmp_path / "r"


@pytest.mark.parametrize(
    ("path", "resolved"),
    [
        ("", ""),
        ("a.yaml", "a.yaml"),
        ("/a.yaml", "a.yaml"),
        ("./sub/../a.yaml", "a.yaml"),
        ("sub//in.yaml", "a.yaml"),
        ("sub/in.yaml", "a.yaml"),
        ("up/r/a.yaml", "a.yaml"),
        ("missing/x.yaml", "missing/x.yaml"),
        ("leak.yaml", None),
        ("up/out.yaml", None),
        ("..", None),
        ("../r-other/a.yaml", None),
        ("x\x00y", None),
    ],
)
def test_resolve(root: Path, path: str, resolved: str | None) -> None:
    """``resolve`` gives the root-relative real path, or None when it leads outside the root."""
    assert DirTree(root).resolve(path) == resolved
    assert DirTree(str(root) + "/").resolve(path) == resolved


def test_resolve_from_the_filesystem_root() -> None:
    """A tree rooted at / resolves to paths without a leading slash."""
    assert DirTree("/").resolve("tmp/../etc") == "etc"
    assert DirTree("/").resolve("") == ""
