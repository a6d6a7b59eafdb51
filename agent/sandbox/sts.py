"""STS in the sandbox: AssumeRole honours the external id a role's trust policy asks for.

moto's AssumeRole hands out credentials for any role ARN, in the ARN's account, and moto keeps one state
per account: that is how one sandbox holds several accounts (the agent assumes
``arn:aws:iam::222222222222:role/...`` and sees account 222222222222). moto ignores trust policies,
though. Real AWS refuses AssumeRole when the role's trust policy requires an ``sts:ExternalId`` the
caller did not send; :func:`external_id_filter` does the same before moto answers, so a wrong or missing
external id fails in the sandbox as it would in AWS. A role that does not exist in the sandbox is assumed
freely, as moto does (tests and the demo need not create one per account).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, unquote

from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam.models import iam_backends

_ROLE_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:iam::(\d{12}):role/(?:.*/)?([^/]+)$")
_STS_SCOPE = re.compile(r"Credential=[^/]+/\d+/[^/]+/sts/")


def external_id_filter(environ: dict[str, Any], body: bytes) -> tuple[int, bytes, str] | None:
    """An AccessDenied reply for an STS AssumeRole whose external id the role's trust policy refuses.

    None lets the request through to moto (not STS, not AssumeRole, no such role, or the id matches).
    """
    if not _STS_SCOPE.search(environ.get("HTTP_AUTHORIZATION", "")):
        return None
    params = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    if params.get("Action") != "AssumeRole":
        return None
    role_arn = params.get("RoleArn", "")
    match = _ROLE_ARN.match(role_arn)
    if match is None:
        return None
    role = _role(*match.groups())
    if role is None:
        return None
    wanted = _required_external_ids(role.assume_role_policy_document)
    if wanted is None or params.get("ExternalId") in wanted:
        return None
    message = (
        f"User: arn:aws:iam::{DEFAULT_ACCOUNT_ID}:user/sandbox is not authorized to perform: "
        f"sts:AssumeRole on resource: {role_arn}"
    )
    xml = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
        f"<Code>AccessDenied</Code><Message>{message}</Message></Error>"
        "<RequestId>00000000-0000-4000-a000-000000000000</RequestId></ErrorResponse>"
    )
    return 403, xml.encode(), "text/xml"


def _role(account: str, name: str) -> Any:
    try:
        return iam_backends[account]["aws"].get_role(name)
    except Exception:  # moto's NoSuchEntity: the sandbox does not know this role
        return None


def _required_external_ids(document: Any) -> set[str] | None:
    """The external ids an AssumeRole must carry under this trust policy; None when none is required.

    An Allow statement for sts:AssumeRole without an ``sts:ExternalId`` condition lets any caller in.
    """
    if isinstance(document, str):
        try:
            document = json.loads(unquote(document) if document.startswith("%") else document)
        except ValueError:
            return None
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    if isinstance(statements, dict):
        statements = [statements]
    ids: set[str] = set()
    for statement in statements:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        if "sts:AssumeRole" not in _strings(statement.get("Action")):
            continue
        condition = (statement.get("Condition") or {}).get("StringEquals") or {}
        required = _strings(condition.get("sts:ExternalId"))
        if not required:
            return None
        ids.update(required)
    return ids or None


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, dict):
        return [str(v) for v in value]
    return []
