"""DynamoDB state store: one table shared by several replicas, conditional writes, a leader lease.

The table has a partition key ``pk`` and a sort key ``sk`` (both strings; docs/ha.md shows how to
create it). A store key's first segment is its partition: ``rollout/prod/web`` is the item
(pk ``rollout``, sk ``prod/web``), so ``items("rollout/")`` is one Query. An item holds ``value`` (the
JSON text) and ``version`` (1 at the first write, +1 at each).

Each write is one TransactWriteItems with two conditions:

* on the item, its ``version`` is the one this replica last read (or the item is absent when it read
  none): a lost update is a ``StoreConflict``, never a silent overwrite;
* a ConditionCheck on the lease item: ``owner`` is this replica and ``token`` is the fencing token it
  took the lease with. Every takeover increments the token, so each write of a replica whose lease was
  taken over is refused (``LeaseLost``), however late it arrives.

While it holds the lease a replica is the table's only writer, so it caches what it read and wrote
(values and versions) for as long as it holds the same token: a tick reads each key from DynamoDB
once per leadership, not once per tick. A new token (a takeover, in either direction) empties the cache.

The lease is the item (pk ``#lease``, sk ``leader``): ``owner``, ``token`` and ``expires`` (epoch
seconds by the writer's clock). ``acquire`` renews it while this replica holds it, or takes it when it
is absent or expired. Replicas' clocks must agree to well within the TTL (NTP gives milliseconds).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import structlog
from botocore.exceptions import ClientError

from agent.aws.errors import translated
from agent.errors import PermanentError, TransientError
from agent.store.base import LeaseLost, StoreConflict
from agent.store.recovery import decode

log = structlog.get_logger("ecs_gitops.store")

LEASE_KEY = {"pk": {"S": "#lease"}, "sk": {"S": "leader"}}
_ABSENT = object()  # "this replica never read the key" in the version cache


def create_table(client: Any, table: str) -> None:
    """Create the table (on-demand capacity) as docs/ha.md does with the AWS CLI; for tests and scripts.

    The agent itself never creates it, so its IAM policy needs no CreateTable.
    """
    client.create_table(
        TableName=table,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def _split(key: str) -> tuple[str, str]:
    pk, _, sk = key.partition("/")
    if not pk or not sk or pk.startswith("#"):
        raise ValueError(f"store key {key!r} must look like <kind>/<name> (and not start with #)")
    return pk, sk


def _item_key(key: str) -> dict[str, Any]:
    pk, sk = _split(key)
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class DynamoLease:
    """The leader lease of the replicas sharing ``table``; ``token`` is the fencing token while held."""

    def __init__(
        self, client: Any, table: str, owner: str, ttl_seconds: float, clock: Callable[[], datetime]
    ) -> None:
        if ttl_seconds <= 0:
            raise PermanentError("store.leaseTtl must be longer than 0s")
        self.client = client
        self.table = table
        self.owner = owner
        self.ttl = float(ttl_seconds)
        self.clock = clock
        self.token: int | None = None
        self._seen: dict[str, Any] | None = None
        self._lock = threading.RLock()

    def acquire(self) -> bool:
        now = self.clock().timestamp()
        with self._lock, _errors(self.table):
            if self.token is not None:
                try:
                    self._update(
                        "SET #expires = :expires",
                        "#owner = :owner AND #token = :token",
                        expires=now + self.ttl,
                        token=self.token,
                    )
                except ClientError as e:
                    if _code(e) != "ConditionalCheckFailedException":
                        raise
                    self.lost("another replica took the lease over")
                else:
                    self._seen = {"owner": self.owner, "token": self.token, "expires": now + self.ttl}
                    return True
            current = self._read()
            self._seen = current
            if current is not None and current["owner"] != self.owner and current["expires"] > now:
                return False
            token = (current["token"] if current else 0) + 1
            try:
                self._update(
                    "SET #owner = :owner, #token = :token, #expires = :expires",
                    "attribute_not_exists(pk)" if current is None else "#token = :previous",
                    expires=now + self.ttl,
                    token=token,
                    previous=current["token"] if current else None,
                )
            except ClientError as e:
                if _code(e) != "ConditionalCheckFailedException":
                    raise
                return False  # another replica took it in between
            self.token = token
            self._seen = {"owner": self.owner, "token": token, "expires": now + self.ttl}
            log.info(
                "lease.acquired",
                owner=self.owner,
                token=token,
                previous=current["owner"] if current else None,
                table=self.table,
            )
            return True

    def release(self) -> None:
        with self._lock:
            if self.token is None:
                return
            try:
                with _errors(self.table):
                    try:
                        self._update(
                            "SET #expires = :expires",
                            "#owner = :owner AND #token = :token",
                            expires=0,
                            token=self.token,
                        )
                    except ClientError as e:
                        if _code(e) != "ConditionalCheckFailedException":
                            raise
                        return  # already taken over
                log.info("lease.released", owner=self.owner, token=self.token, table=self.table)
            except Exception as e:  # shutting down: expiry frees the lease anyway
                log.warning("lease.release_failed", owner=self.owner, error=str(e))
            finally:
                self.token = None

    def holder(self) -> dict[str, Any] | None:
        with self._lock:
            return dict(self._seen) if self._seen else None

    def lost(self, reason: str) -> None:
        """Forget the token (a fenced write was refused, or the renewal found another owner)."""
        with self._lock:
            if self.token is not None:
                log.warning("lease.lost", owner=self.owner, token=self.token, reason=reason, table=self.table)
            self.token = None

    def condition(self) -> dict[str, Any]:
        """The ConditionCheck that fences a write: this replica still holds the lease with its token."""
        with self._lock:
            token = self.token
        if token is None:
            raise LeaseLost(f"{self.owner} does not hold the lease on {self.table}")
        return {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": LEASE_KEY,
                "ConditionExpression": "#owner = :owner AND #token = :token",
                "ExpressionAttributeNames": {"#owner": "owner", "#token": "token"},
                "ExpressionAttributeValues": {":owner": {"S": self.owner}, ":token": {"N": str(token)}},
            }
        }

    def _read(self) -> dict[str, Any] | None:
        item = self.client.get_item(TableName=self.table, Key=LEASE_KEY, ConsistentRead=True).get("Item")
        if not item:
            return None
        return {
            "owner": item["owner"]["S"],
            "token": int(item["token"]["N"]),
            "expires": float(item["expires"]["N"]),
        }

    def _update(self, expression: str, condition: str, *, expires: float, token: int, **more: Any) -> None:
        values = {
            ":owner": {"S": self.owner},
            ":token": {"N": str(token)},
            ":expires": {"N": f"{expires:.3f}"},
        }
        for name, value in more.items():
            if value is not None:
                values[f":{name}"] = {"N": str(value)}
        names = {"#owner": "owner", "#token": "token", "#expires": "expires"}
        text = expression + " " + condition
        self.client.update_item(
            TableName=self.table,
            Key=LEASE_KEY,
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames={k: v for k, v in names.items() if k in text},
            ExpressionAttributeValues={k: v for k, v in values.items() if k in text},
        )


class DynamoStore:
    """Key -> JSON object in one DynamoDB table; writes are versioned and fenced by ``lease``."""

    def __init__(self, client: Any, table: str, lease: DynamoLease) -> None:
        self.client = client
        self.table = table
        self.lease = lease
        self._versions: dict[str, int | None] = {}
        self._values: dict[str, str | None] = {}  # JSON text, or None for absent, under _cache_token
        self._cache_token: int | None = None
        self._lock = threading.Lock()

    def check(self) -> None:
        """Fail at start, with what to do, when the table is missing or not readable; a passing outage
        only logs (the first tick retries)."""
        try:
            with _errors(self.table):
                self.client.get_item(TableName=self.table, Key=LEASE_KEY, ConsistentRead=True)
        except PermanentError:
            raise
        except Exception as e:
            log.warning("store.unreachable", table=self.table, error=str(e))

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            self._validate_cache()
            if self._cache_token is not None and key in self._values:
                text = self._values[key]
                return json.loads(text) if text is not None else None
        with _errors(self.table):
            item = self.client.get_item(TableName=self.table, Key=_item_key(key), ConsistentRead=True).get(
                "Item"
            )
        return self._remember(key, item)

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``get`` of each key: most come from the cache, valid while the table's token is unchanged."""
        out = {}
        for key in dict.fromkeys(keys):
            value = self.get(key)
            if value is not None:
                out[key] = value
        return out

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Each write within is its own conditional request, fenced by the lease, as outside a batch."""
        yield

    def items(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        pk, sep, start = prefix.partition("/")
        if not pk or not sep:
            raise ValueError(f"store prefix {prefix!r} must look like <kind>/[start of a name]")
        condition = "pk = :pk" + (" AND begins_with(sk, :sk)" if start else "")
        values = {":pk": {"S": pk}, **({":sk": {"S": start}} if start else {})}
        out = []
        with _errors(self.table):
            pages = self.client.get_paginator("query").paginate(
                TableName=self.table,
                KeyConditionExpression=condition,
                ExpressionAttributeValues=values,
                ConsistentRead=True,
            )
            for page in pages:
                for item in page.get("Items", ()):
                    key = f"{pk}/{item['sk']['S']}"
                    value = self._remember(key, item)
                    if value is not None:
                        out.append((key, value))
        return sorted(out, key=lambda kv: kv[0])

    def put(self, key: str, value: dict[str, Any]) -> None:
        text = json.dumps(value, sort_keys=True, default=str)
        version = self._version(key)
        update = {
            **self._conditional(key, version),
            "UpdateExpression": "SET #value = :value, #version = :next",
        }
        update["ExpressionAttributeNames"].update({"#value": "value", "#version": "version"})
        update.setdefault("ExpressionAttributeValues", {}).update(
            {":value": {"S": text}, ":next": {"N": str((version or 0) + 1)}}
        )
        self._write(key, {"Update": update})
        with self._lock:
            self._versions[key] = (version or 0) + 1
            self._keep(key, text)

    def delete(self, key: str) -> None:
        version = self._version(key)
        if version is None:
            return  # absent when last read: nothing to delete
        self._write(key, {"Delete": self._conditional(key, version)})
        with self._lock:
            self._versions[key] = None
            self._keep(key, None)

    # -- plumbing --------------------------------------------------------------------------------------

    def _remember(self, key: str, item: dict[str, Any] | None) -> dict[str, Any] | None:
        with self._lock:
            self._validate_cache()
            self._versions[key] = int(item["version"]["N"]) if item else None
        # A value that is not a JSON object reads as absent (logged and counted); its version is kept, so the
        # next put overwrites it.
        value = decode((item.get("value") or {}).get("S"), key, "dynamodb") if item else None
        with self._lock:
            self._keep(key, json.dumps(value, sort_keys=True) if value is not None else None)
        return value

    def _validate_cache(self) -> None:
        """Empty the caches when the lease token changed since they were filled (call under _lock)."""
        token = self.lease.token
        if token != self._cache_token:
            self._values.clear()
            self._versions.clear()
            self._cache_token = token

    def _keep(self, key: str, text: str | None) -> None:
        """Cache a value read or written, while a token is held (call under _lock)."""
        if self._cache_token is not None and self._cache_token == self.lease.token:
            self._values[key] = text

    def _version(self, key: str) -> int | None:
        """The version this replica last saw (read once first when it never has)."""
        with self._lock:
            version = self._versions.get(key, _ABSENT)
        if version is _ABSENT:
            self.get(key)
            with self._lock:
                version = self._versions.get(key)
        return version  # type: ignore[return-value]

    def _conditional(self, key: str, version: int | None) -> dict[str, Any]:
        """Table, key and the condition that the item is still at ``version`` (absent for None)."""
        if version is None:
            return {
                "TableName": self.table,
                "Key": _item_key(key),
                "ConditionExpression": "attribute_not_exists(pk)",
                "ExpressionAttributeNames": {},
            }
        return {
            "TableName": self.table,
            "Key": _item_key(key),
            "ConditionExpression": "#version = :seen",
            "ExpressionAttributeNames": {"#version": "version"},
            "ExpressionAttributeValues": {":seen": {"N": str(version)}},
        }

    def _write(self, key: str, action: dict[str, Any]) -> None:
        """One fenced, conditional write: the lease check and ``action`` in one transaction."""
        for body in action.values():
            if not body["ExpressionAttributeNames"]:
                del body["ExpressionAttributeNames"]
        fence = self.lease.condition()  # raises LeaseLost when not held: nothing is sent
        try:
            with _errors(self.table):
                try:
                    self.client.transact_write_items(TransactItems=[fence, action])
                except ClientError as e:
                    if _code(e) != "TransactionCanceledException":
                        raise
                    reasons = [r.get("Code") for r in e.response.get("CancellationReasons", ())]
                    if reasons and reasons[0] == "ConditionalCheckFailed":
                        self.lease.lost(f"a write of {key} was fenced off")
                        raise LeaseLost(
                            f"{self.lease.owner} lost the lease on {self.table}: write of {key} refused"
                        ) from None
                    if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                        changed = f"{key} was changed by another writer since it was read"
                        raise StoreConflict(changed) from None
                    raise
        except StoreConflict:
            with self._lock:
                self._versions.pop(key, None)  # read afresh next time
                self._values.pop(key, None)
            raise


@contextmanager
def _errors(table: str) -> Iterator[None]:
    """ClientError -> the agent's typed errors (agent/aws/errors.py); a missing table says how to create
    it, and a conditional failure nobody handled is transient (the next tick reads afresh)."""
    with translated():
        try:
            yield
        except ClientError as e:
            code = _code(e)
            if code == "ResourceNotFoundException":
                raise PermanentError(
                    f"DynamoDB table {table!r} does not exist: create it as docs/ha.md shows "
                    "(partition key pk, sort key sk, both strings)"
                ) from None
            if code in (
                "ConditionalCheckFailedException",
                "TransactionCanceledException",
                "TransactionConflictException",
            ):
                raise TransientError(f"DynamoDB {e.operation_name}: {code}") from None
            raise
