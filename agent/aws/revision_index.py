"""The revision index: what the agent knows about each task-definition family's revisions, kept in memory
and (when the agent has a state store) in the store, so a restarted agent, ``apply`` and ``plan
--data-dir`` start warm.

Per family it holds:

* ``arns``: ARN -> content hash of its newest ``KEPT_REVISIONS`` revisions seen ("" for an INACTIVE one;
  a revert to older content registers it again instead of reusing it);
* ``newest``: the highest revision number seen and its ARN;
* ``accounted``: N such that every revision numbered <= N (within the look-back) is in ``arns``;
* the descriptions of a few revisions: the newest, and those its services last ran. Every other
  description is dropped once indexed, so memory is bounded by the number of families, not by how many
  revisions the agent has seen;
* ``echoed``: for a revision the agent registered, the fields ECS's answer held that the request did not
  ask for and the normaliser does not explain (agent.plan.taskdefs.echoed_fields), kept while its hash
  is: a rollout of that revision reports them (agent.engines.rolling.residual).

In the store each family is one key, ``revisions/<scope>/<family>`` (``scope`` names the account and
region: an ARN of another region must never be reused), written only when it changed, once per
``save``. Before a tick registers anything, the families it is about to register are written to
``revisions-pending/<scope>`` (``intend``): a process killed between a RegisterTaskDefinition and the save
leaves them there, and the next process does not trust their index (it looks back once, finds the
revision by its content-hash tag and reuses it rather than register a duplicate).

The store is a cache of facts about immutable revisions: a failed read or write is logged and
the agent carries on, reading ECS as a cold agent would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import structlog

log = structlog.get_logger("ecs_gitops.observer")

PREFIX = "revisions"
PENDING = "revisions-pending"
# How many of a family's most recent revisions keep their content hash in the index.
KEPT_REVISIONS = 20
# How many revisions services of one family run at once whose descriptions are kept (mid-rollout: two).
RUNNING_KEPT = 3


def tag_value(tags: Iterable[dict[str, str]] | None, key: str) -> str | None:
    for t in tags or ():
        if t.get("key") == key:
            return t.get("value")
    return None


def family_of(arn: str) -> str:
    """``arn:aws:ecs:r:a:task-definition/web:3`` -> ``web`` (familyPrefix also matches ``web-api``)."""
    return arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]


def revision_of(arn: str) -> int:
    tail = arn.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class _Family:
    __slots__ = ("accounted", "arns", "bodies", "echoed", "newest", "running")

    def __init__(self) -> None:
        self.arns: dict[str, str] = {}  # ARN -> content hash ("" when INACTIVE)
        self.newest: tuple[int, str] = (0, "")
        self.accounted: int | None = None
        self.running: list[str] = []  # the ARNs services of this family ran when last observed, newest last
        self.bodies: dict[str, dict[str, Any]] = {}  # ARN -> described, for newest and running only
        self.echoed: dict[str, list[str]] = {}  # ARN -> fields ECS added when the agent registered it

    def trim(self) -> None:
        keep = {self.newest[1], *self.running}
        for arn in [a for a in self.bodies if a not in keep]:
            del self.bodies[arn]
        if len(self.arns) > KEPT_REVISIONS:
            ranked = sorted(self.arns.items(), key=lambda kv: revision_of(kv[0]), reverse=True)
            self.arns = dict(ranked[:KEPT_REVISIONS])
        for arn in [a for a in self.echoed if a not in self.arns]:
            del self.echoed[arn]

    def by_hash(self, digest: str) -> str | None:
        found = [a for a, h in self.arns.items() if h == digest]
        return max(found, key=revision_of) if found else None

    def to_json(self) -> dict[str, Any]:
        """What is stored: the hashes always; a description only when it holds no plain environment value
        (values may be secrets, and the state store never holds one: such a revision is described from
        ECS again after a restart, when its content is needed)."""
        value: dict[str, Any] = {
            "arns": self.arns,
            "newest": list(self.newest),
            "accounted": self.accounted,
            "running": self.running,
            "bodies": {arn: body for arn, body in self.bodies.items() if not _has_environment(body)},
        }
        if self.echoed:
            value["echoed"] = self.echoed
        return value

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> _Family:
        f = cls()
        f.arns = {str(a): str(h) for a, h in (value.get("arns") or {}).items()}
        newest = value.get("newest") or (0, "")
        f.newest = (int(newest[0]), str(newest[1]))
        accounted = value.get("accounted")
        f.accounted = int(accounted) if accounted is not None else None
        f.running = [str(a) for a in value.get("running") or ()][-RUNNING_KEPT:]
        f.bodies = {str(a): b for a, b in (value.get("bodies") or {}).items() if isinstance(b, dict)}
        f.echoed = {str(a): [str(p) for p in paths] for a, paths in (value.get("echoed") or {}).items()}
        return f


def _has_environment(described: dict[str, Any]) -> bool:
    containers = (described.get("taskDefinition") or {}).get("containerDefinitions") or ()
    return any(isinstance(c, dict) and c.get("environment") for c in containers)


class RevisionIndex:
    """The index of every family the agent has met; thread-safe (the executor's threads add to it)."""

    def __init__(self, hash_of: Any) -> None:
        self._hash_of = hash_of  # described -> content hash (its tag, else computed)
        self._families: dict[str, _Family] = {}
        self._lock = threading.RLock()
        self._store: Any = None
        self._scope = ""
        self._loaded = True
        self._dirty: set[str] = set()
        self._pending: set[str] = set()  # families being registered, written ahead to the store
        self._registered: set[str] = set()  # families registered since the last save

    # -- persistence -----------------------------------------------------------------------------------

    def keep_in(self, store: Any, scope: str) -> None:
        """Load from and save to ``store`` under ``revisions/<scope>/`` (loaded on first use)."""
        with self._lock:
            self._store, self._scope, self._loaded = store, scope, store is None

    def load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            prefix = f"{PREFIX}/{self._scope}/"
            try:
                items = self._store.items(prefix)
            except Exception as e:  # the index is a cache: a cold start is slower, never wrong
                log.warning("revisions.unreadable", error=str(e))
                return
            try:
                pending = (self._store.get(f"{PENDING}/{self._scope}") or {}).get("families") or ()
            except Exception as e:
                log.warning("revisions.unreadable", error=str(e))
                return
            for key, value in items:
                family = key[len(prefix) :]
                if family and family not in self._families:
                    try:
                        self._families[family] = _Family.from_json(value)
                    except (TypeError, ValueError, IndexError, AttributeError):
                        log.warning("revisions.unusable", family=family)
            for family in pending:  # a registration may have happened unrecorded: look back once
                if family in self._families:
                    self._families[family].accounted = None
                    self._dirty.add(family)
                self._pending.add(family)

    def intend(self, families: Iterable[str]) -> None:
        """Write ahead that ``families`` are about to be registered (see the module's docstring)."""
        with self._lock:
            new = set(families) - self._pending
            if self._store is None or not new:
                return
            self._pending |= new
            value = {"families": sorted(self._pending)}
        try:
            self._store.put(f"{PENDING}/{self._scope}", value)
        except Exception as e:
            log.warning("revisions.unsaved", family="(pending)", error=str(e))

    def save(self) -> None:
        """Write each family whose index changed since the last save, then clear the write-ahead: a family
        announced but not seen registered (an error mid-call) is no longer trusted as complete."""
        with self._lock:
            if self._store is None:
                return
            for family in self._pending - self._registered:
                if family in self._families and self._families[family].accounted is not None:
                    self._families[family].accounted = None
                    self._dirty.add(family)
            pending, self._pending, self._registered = bool(self._pending), set(), set()
            dirty, self._dirty = sorted(self._dirty), set()
            entries = {f: self._families[f].to_json() for f in dirty if f in self._families}
        try:
            for family, value in entries.items():
                self._store.put(f"{PREFIX}/{self._scope}/{family}", value)
            if pending:
                self._store.delete(f"{PENDING}/{self._scope}")
        except Exception as e:
            log.warning("revisions.unsaved", error=str(e))

    # -- reads -----------------------------------------------------------------------------------------

    def described(self, arn: str) -> dict[str, Any] | None:
        with self._lock:
            f = self._families.get(family_of(arn))
            return f.bodies.get(arn) if f is not None else None

    def by_hash(self, family: str, digest: str) -> str | None:
        with self._lock:
            f = self._families.get(family)
            return f.by_hash(digest) if f is not None else None

    def hash_of(self, arn: str) -> str | None:
        """The content hash of a revision the index holds ("" when INACTIVE), without describing it."""
        with self._lock:
            f = self._families.get(family_of(arn))
            return f.arns.get(arn) if f is not None else None

    def echoed(self, arn: str) -> tuple[str, ...]:
        """The fields ECS added to a revision when the agent registered it (see the module docstring)."""
        with self._lock:
            f = self._families.get(family_of(arn))
            return tuple(f.echoed.get(arn, ())) if f is not None else ()

    def complete(self, family: str) -> bool:
        """True when every revision of ``family`` seen is accounted for in the index."""
        with self._lock:
            f = self._families.get(family)
            return f is not None and f.accounted is not None and f.newest[0] <= f.accounted

    def newest(self, family: str) -> int:
        with self._lock:
            f = self._families.get(family)
            return f.newest[0] if f is not None else 0

    def __len__(self) -> int:
        return len(self._families)

    # -- writes ----------------------------------------------------------------------------------------

    def add(self, described: dict[str, Any], registered: bool = False, echoed: Iterable[str] = ()) -> None:
        """Index a revision (``{"taskDefinition": ..., "tags": ...}``) by (family, content hash); a revision
        1 the agent registered, or the one following the accounted ones, extends ``accounted``. ``echoed``:
        the fields ECS added when the agent registered it."""
        td = described["taskDefinition"]
        arn, family, revision = td["taskDefinitionArn"], td["family"], int(td.get("revision") or 0)
        digest = self._hash_of(described) if td.get("status", "ACTIVE") == "ACTIVE" else ""
        with self._lock:
            f = self._families.setdefault(family, _Family())
            if registered:
                self._registered.add(family)
            before = (f.newest, f.accounted, len(f.arns))
            f.bodies[arn] = described
            f.arns[arn] = digest
            if echoed:
                f.echoed[arn] = list(echoed)
                self._dirty.add(family)
            if revision > f.newest[0]:
                f.newest = (revision, arn)
            if registered and revision == 1:
                f.accounted = 1
            elif f.accounted is not None and revision == f.accounted + 1:
                f.accounted = revision
            f.trim()
            if (f.newest, f.accounted, len(f.arns)) != before or arn in (f.newest[1], *f.running):
                self._dirty.add(family)

    def ran(self, family: str, arn: str) -> None:
        """Note a revision a service of ``family`` runs (its description is kept)."""
        with self._lock:
            f = self._families.setdefault(family, _Family())
            if arn not in f.running:
                f.running = [*f.running, arn][-RUNNING_KEPT:]
                f.trim()
                self._dirty.add(family)

    def looked_back(self, family: str, newest: int) -> None:
        """A look-back listed the family down from revision ``newest``: accounted for up to there."""
        with self._lock:
            f = self._families.setdefault(family, _Family())
            accounted = max(newest, f.accounted or 0)
            if newest >= f.newest[0] and accounted != f.accounted:
                f.accounted = accounted
                self._dirty.add(family)
