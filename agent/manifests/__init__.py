"""Manifests: load YAML/JSON safely, validate against schemas/, build the typed Desired set.

``load_desired(tree, config)`` is the one entry point: it reads every file of the manifest root,
collects every problem of every file in one run, and either returns ``Desired`` (with its warnings)
or raises ``InvalidInput`` listing all errors, sorted by file and line. Bad input never escapes as
a Python exception of another type.
"""

from __future__ import annotations

from typing import Any

from agent.errors import InvalidInput, Problem
from agent.manifests.model import Desired
from agent.manifests.tree import DirTree, GitTree, MissingFolder, Tree

__all__ = ["DirTree", "GitTree", "Tree", "load_desired", "sort_problems"]


def sort_problems(problems: list[Problem]) -> list[Problem]:
    """By file, then line (unknown lines first), then pointer; exact duplicates dropped."""
    unique = dict.fromkeys(problems)
    return sorted(unique, key=lambda p: (p.file, p.line or 0, p.pointer, p.message, p.severity))


def load_desired(tree: Tree, config: Any = None) -> Desired:
    """Read, validate and check every manifest under ``tree`` within the commit's budget (``limits`` of
    the agent ``config``, agent.manifests.limits); raise InvalidInput on any error."""
    from agent.manifests.checks import check
    from agent.manifests.limits import Budget
    from agent.manifests.loading import classify, load_file

    budget = Budget.from_config(config)
    problems: list[Problem] = []
    documents = []
    loaded: list[str] = []
    broken: list[str] = []
    try:
        paths = sorted(tree.walk())
    except MissingFolder as err:  # short, for a commit status: the folder, and that the commit lacks it
        raise InvalidInput([Problem(err.folder, "", str(err))]) from err
    except Exception as err:  # an unreadable root, a bad ref: report it like any other input problem
        raise InvalidInput([Problem(tree.describe(), "", f"cannot list the manifest root: {err}")]) from err
    for path in paths:
        try:
            loaded_file = load_file(tree, path, budget)
        except Exception as err:  # load_file reports what it expects; this is a last line of defence
            detail = " ".join(str(err).split())  # one line: FILE: /pointer: message stays one line
            problems.append(Problem(path, "", f"cannot be read: {type(err).__name__}: {detail}"))
            broken.append(path)
            continue
        loaded.append(path)
        if any(p.severity == "error" for p in loaded_file.problems):
            broken.append(path)
        problems.extend(loaded_file.problems)
        documents.extend(loaded_file.documents)
        if budget.spent:  # the commit asks for more than the agent reads: say so, check nothing
            raise InvalidInput(sort_problems([p for p in problems if p.severity == "error"]))
    classified = classify(documents)
    problems.extend(classified.problems)
    desired, found = check(classified, tree, config, loaded_files=loaded, broken_files=broken)
    problems.extend(found)
    if not classified.manifests and not classified.task_definitions and not problems:
        # Almost always a wrong --path or ref; planning nothing would silently report "no changes".
        problems.append(Problem(tree.describe(), "", "no manifests or task definitions found here"))
    problems = sort_problems(problems)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise InvalidInput(problems)
    desired.warnings = problems
    return desired
