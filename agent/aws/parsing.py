"""Response parsing for botocore's ``json`` protocol (ECS, DynamoDB, SSM, Secrets Manager, Logs...) with a
converter compiled once per output shape.

Why: botocore's ``JSONParser`` walks the output shape for every response, a handler looked up by name and
called for every value (583 for a 10-service DescribeServices). The no-op tick at 1,000 services makes 100
of those calls, and parsing was about a third of botocore's CPU in each. Here the walk is done once per
shape: each shape becomes a small function (a structure's members, their JSON names and converters in a
tuple), scalars that need nothing are returned as they are, and a parse is json.loads plus one call of the
output shape's function. Measured on a captured 10-service DescribeServices (17.8 kB): 0.46 ms per parse
by botocore, 0.19 ms here (json.loads alone 0.08 ms); per DescribeServices call over HTTP to the sandbox,
parsing went from about 0.8 to 0.4 ms of CPU (2.6 to 2.2 ms for the whole call, on a busy machine).

The result is botocore's, value for value and key for key (tests/unit/test_response_parsing.py checks it
against botocore's own parser): a structure keeps only its modelled members whose value is not null and
is None when null; a list keeps null items; a map converts keys and values; a document is returned as is;
a tagged union is checked as botocore does (one member set, an unknown one becomes ``SDK_UNKNOWN_MEMBER``);
timestamps and blobs go through the parser's ``timestamp_parser`` and ``blob_parser``; ``ResponseMetadata``
is filled as ``ResponseParser.parse`` fills it. Unions and documents are compiled, not left to botocore,
because DescribeServices and DescribeTaskDefinition have both in their output shapes.

botocore's own parser does the rest: errors (status >= 300), a missing output shape, an empty or non-JSON
body, a body that is not a JSON object, event streams, and any shape type not named below. Other protocols
keep botocore's parsers (in botocore 1.44 CloudWatch, Cloud Map and CodeDeploy speak smithy-rpc-v2-cbor).

The answers the agent reads on every tick (``REMEMBERED``: DescribeServices, DescribeClusters) are also
remembered by their exact bytes: an answer byte for byte the same as one of the last ones (a steady
service's description does not change between ticks, on ECS as in the sandbox) gets the result parsed
then, as a new top-level dict over the same values, without json.loads or a conversion. The agent does
not change what botocore returns (planning normalises copies), and the last tick's plan keeps these very
descriptions (``ServiceMemo``), so a remembered answer costs the bytes alone (about 18 kB per 10 services),
and an unchanged service's description is the same object as last tick's, which the plan memo compares
by identity. A no-op tick of 1,000 services parses nothing. What is kept is bounded twice: after each
observation the answers not asked for in the last two are forgotten (``forget_unused``: a service that
changed leaves no stale answer behind), and at most ``REMEMBER_BYTES`` of bodies in all, the least
recently used forgotten first. Observers sharing one client (the daemon's tick and its pull-request
previews) each count as an observation: a preview only makes the tick's answers be forgotten sooner,
and a forgotten answer is parsed again, never wrong.

Only botocore's public extension points are used: ``CompiledJSONParser`` subclasses ``JSONParser`` and
overrides ``parse``; ``ParserFactory`` is the session's ``response_parser_factory`` component (see
agent/aws/clients.py). botocore makes a parser per response, so the compiled converters live in the factory,
one per output shape object (a client's shapes are stable: ``OperationModel.output_shape`` is cached).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import botocore.parsers
from botocore.model import Shape
from botocore.utils import lowercase_dict

# The logger botocore's parsers write to: someone debugging with botocore's logging sees the same lines.
_LOG = logging.getLogger("botocore.parsers")

Converter = Callable[[Any], Any]

# Types returned as they are (botocore's ``_default_handle``). Any type outside these and those compiled
# below sends the operation to botocore's parser.
_AS_IS = frozenset(
    {"string", "character", "boolean", "byte", "short", "integer", "long", "float", "double"}
    | {"bigdecimal", "biginteger"}
)


class _Unsupported(Exception):
    """The output shape has something this module leaves to botocore (an event stream, an unknown type)."""


class _FallBack:
    """The converter cache's mark for an output shape botocore parses."""


BOTOCORE = _FallBack()  # what Converters.get answers for an output shape left to botocore's parser

# Output shapes whose answers are remembered by their bytes: the reads every tick makes again. Their
# results are read, never changed, by the agent (see the module docstring).
REMEMBERED = frozenset({"DescribeServicesResponse", "DescribeClustersResponse"})
REMEMBER_BYTES = 16 * 1024 * 1024  # bodies kept at most (a 10-service DescribeServices is about 18 kB)


class Converters:
    """The compiled converters of output shapes, by shape object, for one pair of timestamp and blob parsers.

    Lookups take no lock; two threads may compile the same shape at once, and one result wins (harmless).
    """

    def __init__(
        self, timestamp_parser: Converter, blob_parser: Converter, remember_bytes: int = REMEMBER_BYTES
    ) -> None:
        self.timestamp_parser = timestamp_parser
        self.blob_parser = blob_parser
        self._by_shape: weakref.WeakKeyDictionary[Shape, Converter | _FallBack] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._remember_bytes = remember_bytes
        # (shape name, body) -> [the result, the generation it was last used in]
        self._recent: OrderedDict[tuple[str, bytes], list[Any]] = OrderedDict()
        self._recent_bytes = 0
        self._generation = 0

    def recall(self, shape: Shape, body: bytes) -> dict[str, Any] | None:
        """The result parsed from the very same bytes of a ``REMEMBERED`` shape, if still remembered."""
        if shape.name not in REMEMBERED:
            return None
        key = (shape.name, body)
        with self._lock:
            found = self._recent.get(key)
            if found is None:
                return None
            self._recent.move_to_end(key)
            found[1] = self._generation
            return found[0]  # type: ignore[no-any-return]

    def remember(self, shape: Shape, body: bytes, parsed: dict[str, Any]) -> None:
        """Keep ``parsed`` for the next answer of exactly ``body`` (``REMEMBERED`` shapes only)."""
        if shape.name not in REMEMBERED or len(body) > self._remember_bytes:
            return
        key = (shape.name, body)
        with self._lock:
            if key in self._recent:
                return
            self._recent[key] = [parsed, self._generation]
            self._recent_bytes += len(body)
            while self._recent_bytes > self._remember_bytes:
                self._forget(next(iter(self._recent)))

    def forget_unused(self) -> None:
        """Forget the answers not asked for since the call before last (the Observer calls this after each
        observation): what is kept is at most two observations' answers, not those of services that
        changed since, which would otherwise stay until ``REMEMBER_BYTES`` pushed them out."""
        with self._lock:
            self._generation += 1
            for key in [k for k, (_, used) in self._recent.items() if used < self._generation - 1]:
                self._forget(key)

    def _forget(self, key: tuple[str, bytes]) -> None:
        del self._recent[key]
        self._recent_bytes -= len(key[1])

    def get(self, shape: Shape) -> Converter | _FallBack:
        converter = self._by_shape.get(shape)
        if converter is None:
            try:
                converter = _compile(shape, self.timestamp_parser, self.blob_parser)
            except _Unsupported:
                converter = BOTOCORE
            with self._lock:  # WeakKeyDictionary's own bookkeeping is not meant for concurrent writers
                self._by_shape[shape] = converter
        return converter


class CompiledJSONParser(botocore.parsers.JSONParser):
    """botocore's ``json`` protocol parser, with compiled converters for successful responses."""

    def __init__(
        self,
        timestamp_parser: Converter | None = None,
        blob_parser: Converter | None = None,
        converters: Converters | None = None,
    ) -> None:
        super().__init__(timestamp_parser, blob_parser)
        if converters is None:
            # botocore's defaults: its DEFAULT_TIMESTAMP_PARSER, and base64 decoding (_default_blob_parser).
            converters = Converters(
                timestamp_parser or botocore.parsers.DEFAULT_TIMESTAMP_PARSER, blob_parser or base64.b64decode
            )
        self.converters = converters

    def parse(self, response: dict[str, Any], shape: Shape | None) -> Any:
        body = response.get("body")
        if shape is None or response["status_code"] >= 300 or not body or not isinstance(body, bytes):
            return super().parse(response, shape)
        converters = self.converters
        remembered = converters.recall(shape, body)
        if remembered is None:
            converter = converters.get(shape)
            if converter is BOTOCORE:
                return super().parse(response, shape)
            try:
                value = json.loads(body.decode(self.DEFAULT_ENCODING))
            except ValueError:  # botocore's parser answers {"message": body}, or raises for a body not UTF-8
                return super().parse(response, shape)
            if type(value) is not dict:
                return super().parse(response, shape)
            remembered = converter(value)
            converters.remember(shape, body, remembered)
        _LOG.debug("Response headers: %r", response["headers"])
        _LOG.debug("Response body:\n%r", body)
        parsed = dict(remembered)  # its own top level: ResponseMetadata is added below, per answer
        # What JSONParser._do_parse, then ResponseParser.parse, add.
        headers = response["headers"]
        metadata = dict(parsed.get("ResponseMetadata") or {})  # never a remembered answer's own dict
        if "x-amzn-requestid" in headers:
            metadata["RequestId"] = headers["x-amzn-requestid"]
        metadata["HTTPStatusCode"] = response["status_code"]
        metadata["HTTPHeaders"] = lowercase_dict(headers)
        parsed["ResponseMetadata"] = metadata
        algorithm = response.get("context", {}).get("checksum", {}).get("response_algorithm")
        if algorithm:
            metadata["ChecksumAlgorithm"] = algorithm
        return parsed


class ParserFactory(botocore.parsers.ResponseParserFactory):
    """botocore's parser factory, whose ``json`` parsers share one set of compiled converters."""

    def __init__(self) -> None:
        super().__init__()
        self._kwargs: dict[str, Any] = {}
        self.converters = self._new_converters()

    def set_parser_defaults(self, **kwargs: Any) -> None:
        super().set_parser_defaults(**kwargs)
        self._kwargs.update(kwargs)
        self.converters = self._new_converters()  # those compiled with the old parsers are stale

    def create_parser(self, protocol_name: str) -> Any:
        if protocol_name == "json":
            return CompiledJSONParser(**self._kwargs, converters=self.converters)
        return super().create_parser(protocol_name)

    def forget_unused(self) -> None:
        """See ``Converters.forget_unused``."""
        self.converters.forget_unused()

    def _new_converters(self) -> Converters:
        return Converters(
            self._kwargs.get("timestamp_parser") or botocore.parsers.DEFAULT_TIMESTAMP_PARSER,
            self._kwargs.get("blob_parser") or base64.b64decode,
        )


def _compile(shape: Shape, timestamp_parser: Converter, blob_parser: Converter) -> Converter:
    """The converter of a response body of ``shape`` (a structure), or _Unsupported."""
    if shape.type_name != "structure" or shape.serialization.get("eventstream"):
        raise _Unsupported(shape.name)
    # Aggregates by shape name: a recursive shape refers to itself through this table.
    named: dict[str, Converter | None] = {}

    def build(shape: Shape) -> Converter | None:
        """``shape``'s converter, None for a value returned as it is."""
        kind = shape.type_name
        if kind in _AS_IS:
            return None
        if kind == "timestamp":
            return timestamp_parser
        if kind == "blob":
            return blob_parser
        name = shape.name
        if name in named:
            done = named[name]
            # Still being built: one of its own members (recursion). Look it up when called.
            return done if done is not None else (lambda value: named[name](value))  # type: ignore[misc]
        named[name] = None
        if kind == "structure":
            converter = _structure(shape, build)
        elif kind == "list":
            converter = _list(build(shape.member))
        elif kind == "map":
            converter = _map(build(shape.key), build(shape.value))
        else:
            raise _Unsupported(f"{name}: {kind}")
        named[name] = converter
        return converter

    converter = build(shape)
    assert converter is not None
    return converter


def _structure(shape: Any, build: Callable[[Shape], Converter | None]) -> Converter:
    """botocore's ``BaseJSONParser._handle_structure`` for one structure shape."""
    if shape.is_document_type:
        return _as_is
    members = []
    for name, member in shape.members.items():
        if member.serialization.get("eventstream"):
            raise _Unsupported(f"{shape.name}.{name}: event stream")
        members.append((name, member.serialization.get("name", name), build(member)))
    fields = tuple(members)

    def structure(value: Any) -> Any:
        if value is None:
            return None
        parsed = {}
        get = value.get
        for name, json_name, converter in fields:
            item = get(json_name)
            if item is not None:
                parsed[name] = item if converter is None else converter(item)
        return parsed

    if not fields:  # botocore reads nothing from the value: any non-null value is {}

        def structure(value: Any) -> Any:
            return None if value is None else {}

    if not shape.is_tagged_union:
        return structure
    json_names = frozenset(json_name for _, json_name, _ in fields)
    union_name = shape.name

    def union(value: Any) -> Any:
        # ResponseParser._has_unknown_tagged_union_member, then _handle_structure.
        if value is None:
            return None
        cleaned = value.copy()
        cleaned.pop("__type", None)
        cleaned = {k: v for k, v in cleaned.items() if v is not None}
        if len(cleaned) != 1:
            raise botocore.parsers.ResponseParserError(
                f"Invalid service response: {union_name} must have one and only one member set."
            )
        tag = next(iter(cleaned))
        if tag not in json_names:
            _LOG.info(
                "Received a tagged union response with member unknown to client: %s. "
                "Please upgrade SDK for full response support.",
                tag,
            )
            return {"SDK_UNKNOWN_MEMBER": {"name": next(iter(value))}}
        return structure(value)

    return union


def _list(item: Converter | None) -> Converter:
    """botocore's ``ResponseParser._handle_list``: a new list, null items kept as None."""
    if item is None:
        return list
    convert = item

    def each(value: Any) -> Any:
        return [None if x is None else convert(x) for x in value]

    return each


def _map(key: Converter | None, value: Converter | None) -> Converter:
    """botocore's ``BaseJSONParser._handle_map``: a new dict, keys and values converted."""
    if key is None and value is None:
        return lambda mapping: dict(mapping.items())
    if key is None:
        convert_value = value
        return lambda mapping: {k: convert_value(v) for k, v in mapping.items()}  # type: ignore[misc]
    convert_key = key
    convert = value or _as_is
    return lambda mapping: {convert_key(k): convert(v) for k, v in mapping.items()}


def _as_is(value: Any) -> Any:
    return value
