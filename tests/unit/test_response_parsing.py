"""agent.aws.parsing answers exactly what botocore's JSONParser answers: for random bodies of every output
shape of seven services, for the sandbox's real responses to the agent's calls, and for errors (left to
botocore)."""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from unittest import mock

import botocore.parsers
import botocore.session
import pytest
from botocore.awsrequest import HeadersDict
from botocore.exceptions import ClientError

from agent.aws import parsing
from agent.aws.clients import Aws, parse_timestamp
from agent.manifests.loading import task_definition_body
from agent.sandbox.harness import CORPUS

if TYPE_CHECKING:
    from agent.sandbox.server import Sandbox

SERVICES = ["ecs", "cloudwatch", "servicediscovery", "codedeploy", "dynamodb", "ssm", "secretsmanager"]
SEEDS = range(6)
MAX_DEPTH = 6  # recursive shapes (DynamoDB's AttributeValue...) stop nesting here
TASK_DEFINITIONS = sorted(CORPUS.glob("*.json"))
_SESSION = botocore.session.get_session()


def _factory() -> parsing.ParserFactory:
    factory = parsing.ParserFactory()
    factory.set_parser_defaults(timestamp_parser=parse_timestamp)
    return factory


def _botocore() -> botocore.parsers.JSONParser:
    return botocore.parsers.JSONParser(timestamp_parser=parse_timestamp)


def _outcome(parser: Any, response: dict[str, Any], shape: Any) -> tuple[str, str]:
    """What a parser makes of a response: the result's repr (types, key order and all), or its error."""
    try:
        return "parsed", repr(parser.parse(response, shape))
    except Exception as error:  # both parsers must fail the same way too
        return "raised", f"{type(error).__name__}: {error}"


def _assert_same(response: dict[str, Any], shape: Any, factory: parsing.ParserFactory | None = None) -> Any:
    """Parse ``response`` both ways; the two results (or errors) are identical. Returns ours."""
    ours = (factory or _factory()).create_parser("json")
    assert _outcome(ours, response, shape) == _outcome(_botocore(), response, shape)
    try:
        parsed = ours.parse(response, shape)
    except Exception:  # compared above
        return None
    assert parsed == _botocore().parse(response, shape)
    return parsed


# -- random bodies from the service models --------------------------------------------------------------


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value (an unknown key's, a document's)."""
    kind = rng.choice(["null", "int", "str", "list", "dict"] if depth < 3 else ["null", "int", "str"])
    if kind == "int":
        return rng.randint(-5, 5)
    if kind == "str":
        return rng.choice(["", "x", "é✓", "1765000000"])
    if kind == "list":
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 2))]
    if kind == "dict":
        return {rng.choice("abc"): _random_json(rng, depth + 1) for _ in range(rng.randint(0, 2))}
    return None


def _sample(shape: Any, rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value of ``shape``, as a service might send it (never null itself)."""
    kind = shape.type_name
    if kind == "structure":
        if shape.is_document_type:
            return _random_json(rng)
        if shape.is_tagged_union:
            return _union(shape, rng, depth)
        value: dict[str, Any] = {}
        for name, member in shape.members.items():
            roll = rng.random()
            if roll < 0.25 or (depth >= MAX_DEPTH and member.type_name in ("structure", "list", "map")):
                continue  # absent
            json_name = member.serialization.get("name", name)
            value[json_name] = None if roll < 0.35 else _sample(member, rng, depth + 1)
        if rng.random() < 0.3:
            value["notInTheModel"] = _random_json(rng)
        items = list(value.items())
        rng.shuffle(items)  # the body's key order is not the model's
        return dict(items)
    if kind == "list":
        return [
            None if rng.random() < 0.15 else _sample(shape.member, rng, depth + 1)
            for _ in range(rng.randint(0, 3) if depth < MAX_DEPTH else 0)
        ]
    if kind == "map":
        nullable = shape.value.type_name not in (
            "list",
            "map",
            "blob",
            "timestamp",
        )  # botocore raises on those
        return {
            _sample(shape.key, rng, depth + 1): (
                None if nullable and rng.random() < 0.15 else _sample(shape.value, rng, depth + 1)
            )
            for _ in range(rng.randint(0, 3) if depth < MAX_DEPTH else 0)
        }
    if kind == "timestamp":
        return rng.choice(
            [
                rng.randint(0, 2_000_000_000),
                rng.uniform(0, 2_000_000_000),
                "2026-12-07T05:00:00Z",
                "2026-12-07T05:00:00.123+02:00",
            ]
        )
    if kind == "blob":
        return base64.b64encode(rng.randbytes(rng.randint(0, 12))).decode()
    if kind == "string":
        enum = shape.metadata.get("enum")
        return (
            rng.choice(enum)
            if enum
            else "".join(rng.choices(string.ascii_letters + "é/:", k=rng.randint(0, 8)))
        )
    if kind in ("integer", "long"):
        return rng.randint(-(2**40), 2**40)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind in ("double", "float"):
        return rng.choice([rng.uniform(-1e6, 1e6), rng.randint(0, 100)])
    raise AssertionError(f"no sample for {shape.name}: {kind}")


def _union(shape: Any, rng: random.Random, depth: int) -> dict[str, Any]:
    """A tagged union's value: mostly one member set, sometimes an unknown tag or (rarely, an error) two."""
    names = {name: member.serialization.get("name", name) for name, member in shape.members.items()}
    roll = rng.random()
    if roll < 0.1:
        value: dict[str, Any] = {"SomeFutureMember": {"x": 1}}
    else:
        chosen = rng.sample(sorted(names), 2 if roll < 0.13 and len(names) > 1 else 1)
        value = {names[n]: _sample(shape.members[n], rng, depth + 1) for n in chosen}
    if rng.random() < 0.2:
        value.setdefault(names[rng.choice(sorted(names))], None)  # another member, null
    if rng.random() < 0.2:
        value["__type"] = "com.amazonaws#Whatever"
    items = list(value.items())
    rng.shuffle(items)
    return dict(items)


def _response(body: Any, rng: random.Random, status: int = 200) -> dict[str, Any]:
    """A response dict as botocore's endpoint makes it (case-insensitive headers, a context)."""
    headers = HeadersDict(
        {"Content-Type": "application/x-amz-json-1.1", "Date": "Mon, 07 Dec 2026 05:00:00 GMT"}
    )
    if rng.random() < 0.8:
        headers["x-amzn-RequestId"] = f"req-{rng.randint(0, 999)}"
    context: dict[str, Any] = {"operation_name": "Op"}
    if rng.random() < 0.2:
        context["checksum"] = {"response_algorithm": "crc32"}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {"headers": headers, "status_code": status, "body": raw, "context": context}


def _operations(service: str) -> Iterator[tuple[str, Any]]:
    model = _SESSION.get_service_model(service)
    for name in model.operation_names:
        yield name, model.operation_model(name).output_shape


@pytest.mark.parametrize("service", SERVICES)
def test_random_bodies_of_every_operation(service: str) -> None:
    """For every operation's output shape, random bodies (absent and null members, null items, unknown keys,
    timestamps as numbers and strings, blobs, unions, nesting) parse exactly as botocore parses them."""
    factory = _factory()
    compiled = 0
    for operation, shape in _operations(service):
        for seed in SEEDS:
            rng = random.Random(f"{service}.{operation}.{seed}")
            body = _sample(shape, rng) if shape is not None else {"anything": 1}
            _assert_same(_response(body, rng), shape, factory)
        if shape is not None and factory.create_parser("json").converters.get(shape) is not parsing.BOTOCORE:
            compiled += 1
    assert compiled == sum(shape is not None for _, shape in _operations(service))  # none left to botocore


def test_bodies_that_are_not_an_object_go_to_botocore() -> None:
    """An empty body, one that is not JSON, not UTF-8, or not a JSON object: botocore's answer (or error)."""
    shape = _SESSION.get_service_model("ecs").operation_model("DescribeServices").output_shape
    rng = random.Random(1)
    for body in [b"", b"   ", b"not json", b"\xff\xfe", b"null", b"[1, 2]", b'"text"', b"{}"]:
        _assert_same(_response(body, rng), shape)
    _assert_same(_response(b"{}", rng), None)


def test_malformed_values_fail_as_botocore_fails() -> None:
    """Values of the wrong JSON type raise what botocore raises, or give what it gives."""
    shape = _SESSION.get_service_model("ecs").operation_model("DescribeServices").output_shape
    rng = random.Random(2)
    for services in ["a string", 3, {"serviceName": "as a dict"}, ["a string"], [{"tags": "not a list"}]]:
        _assert_same(_response({"services": services}, rng), shape)
    for union in [{}, {"logLevel": None}, {"__type": "x"}, "a string"]:  # a tagged union with no member set
        _assert_same(_response(_with_union(union), rng), shape)


@pytest.mark.parametrize(
    "union",
    [
        {"logLevel": "debug"},
        {"__type": "x", "logLevel": "debug", "other": None},
        {"future": {"a": 1}},
        {"__type": "x", "future": 1},  # botocore names the body's first key, here __type
        {"logLevel": None, "future": 1},
    ],
)
def test_tagged_unions_as_botocore(union: dict[str, Any]) -> None:
    """A tagged union's member, or the SDK_UNKNOWN_MEMBER botocore makes of a member it does not know."""
    shape = _SESSION.get_service_model("ecs").operation_model("DescribeServices").output_shape
    parsed = _assert_same(_response(_with_union(union), random.Random(4)), shape)
    assert parsed["services"][0]["deployments"][0]["serviceConnectConfiguration"]["containerConfigurations"][
        0
    ]


def _with_union(union: Any) -> dict[str, Any]:
    """A DescribeServices body with ``union`` as a ServiceConnectContainerConfiguration (a tagged union)."""
    configuration = {"containerConfigurations": [union]}
    return {"services": [{"deployments": [{"serviceConnectConfiguration": configuration}]}]}


# -- real responses from the sandbox --------------------------------------------------------------------


@pytest.fixture(scope="module")
def captured(sandbox: Sandbox) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """The response dicts (and output shapes) of the agent's ECS reads, made by an Aws client of the sandbox
    (the setup goes through the sandbox's own client, as other tests' setups do)."""
    setup = sandbox.client("ecs")
    setup.create_cluster(clusterName="parsing", tags=[{"key": "team", "value": "web"}])
    arns = []
    for path in TASK_DEFINITIONS:
        params = task_definition_body(json.loads(path.read_text()))[0]
        arns.append(setup.register_task_definition(**params)["taskDefinition"]["taskDefinitionArn"])
    for i in range(10):
        setup.create_service(
            cluster="parsing",
            serviceName=f"svc{i}",
            taskDefinition=arns[i % len(arns)],
            desiredCount=1,
            tags=[{"key": "ecs-gitops:managed", "value": "true"}, {"key": "n", "value": str(i)}],
        )
    aws = Aws(region=sandbox.region, endpoint_url=sandbox.endpoint)
    seen: dict[str, list[tuple[dict[str, Any], Any]]] = {}

    def keep(response_dict: dict[str, Any], operation_model: Any, **_: Any) -> None:
        seen.setdefault(operation_model.name, []).append((response_dict, operation_model.output_shape))

    aws.register("before-parse.ecs.*", keep)
    ecs = aws.client("ecs")
    for arn in arns:
        ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
    ecs.describe_services(cluster="parsing", services=[f"svc{i}" for i in range(10)], include=["TAGS"])
    ecs.describe_services(cluster="parsing", services=["svc0", "missing"], include=["TAGS"])
    ecs.describe_clusters(clusters=["parsing", "missing"], include=["TAGS", "SETTINGS"])
    ecs.list_task_definitions(maxResults=5)
    with pytest.raises(ClientError):
        ecs.describe_task_definition(taskDefinition="no-such-family:1")
    return seen


@pytest.mark.parametrize(
    "operation",
    [
        "DescribeServices",
        "DescribeTaskDefinition",
        "DescribeClusters",
        "ListTaskDefinitions",
    ],
)
def test_sandbox_responses_parse_as_botocore_parses_them(captured, operation: str) -> None:  # type: ignore[no-untyped-def]
    """The sandbox's answers to the agent's ECS calls, captured over HTTP, parse exactly as botocore parses
    them, by compiled converters (nothing left to botocore)."""
    factory = _factory()
    assert captured[operation]
    for response, shape in captured[operation]:
        if response["status_code"] >= 300:
            continue
        parsed = _assert_same(response, shape, factory)
        assert parsed and parsed["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert factory.create_parser("json").converters.get(shape) is not parsing.BOTOCORE


def test_sandbox_error_goes_to_botocore(captured, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The sandbox's 400 for an unknown task definition parses as botocore parses it, compiling nothing."""
    monkeypatch.setattr(parsing, "_compile", _refuse)
    errors = [(r, s) for r, s in captured["DescribeTaskDefinition"] if r["status_code"] >= 300]
    assert errors
    for response, shape in errors:
        parsed = _assert_same(response, shape)
        assert parsed["Error"]["Code"] and parsed["ResponseMetadata"]["HTTPStatusCode"] == 400


# -- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (
            400,
            b'{"__type": "com.amazonaws.ecs#ClusterNotFoundException", "message": "Cluster not found."}',
            {},
        ),
        (400, b'{"__type": "ThrottlingException:http://x", "Message": "Rate exceeded"}', {}),
        (
            400,
            b'{"__type": "AWS.SimpleQueueService.NonExistentQueue"}',
            {"x-amzn-query-error": "Q.Error;Sender"},
        ),
        (403, b"not json at all", {}),
        (404, b"", {}),
        (500, b'{"__type": "ServerException", "message": "boom"}', {}),
        (502, b"<html><body><b>Http/1.1 Bad Gateway</b></body></html>", {}),
        (503, b"", {}),
    ],
)
def test_error_responses_go_to_botocore(
    status: int, body: bytes, headers: dict[str, str], monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A 4xx or 5xx (JSON, not JSON, HTML, empty) parses as botocore parses it, with nothing compiled."""
    monkeypatch.setattr(parsing, "_compile", _refuse)
    model = _SESSION.get_service_model("ecs")
    response = _response(body, random.Random(status), status)
    response["headers"].update(headers)
    _assert_same(response, model.operation_model("DescribeServices").output_shape)
    _assert_same(response, model.shape_for("ClusterNotFoundException"))  # the endpoint's modelled-error pass


def _refuse(*_: Any) -> Any:
    raise AssertionError("compiled a converter for an error response")


# -- wiring and caching ---------------------------------------------------------------------------------


def test_aws_clients_use_the_compiled_parser(sandbox: Sandbox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A client made by agent.aws.clients.Aws parses ECS responses with CompiledJSONParser."""
    used = []
    parse = parsing.CompiledJSONParser.parse

    def spy(self: parsing.CompiledJSONParser, response: Any, shape: Any) -> Any:
        used.append(shape.name)
        return parse(self, response, shape)

    monkeypatch.setattr(parsing.CompiledJSONParser, "parse", spy)
    aws = Aws(region=sandbox.region, endpoint_url=sandbox.endpoint)
    clusters = aws.client("ecs").describe_clusters(clusters=["none-such"])["failures"]
    assert used == ["DescribeClustersResponse"] and clusters[0]["reason"] == "MISSING"


def test_a_shape_is_compiled_once(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Parsers of one factory share converters: the second parse of a shape compiles nothing."""
    compile_ = mock.Mock(wraps=parsing._compile)
    monkeypatch.setattr(parsing, "_compile", compile_)

    def compiled() -> list[str]:
        return [call.args[0].name for call in compile_.call_args_list]

    model = _SESSION.get_service_model("ecs")
    services = model.operation_model("DescribeServices").output_shape
    clusters = model.operation_model("DescribeClusters").output_shape
    factory, rng = _factory(), random.Random(3)
    for shape in (services, services, clusters, services, clusters):
        factory.create_parser("json").parse(_response(_sample(shape, rng), rng), shape)
    assert compiled() == ["DescribeServicesResponse", "DescribeClustersResponse"]
    factory.set_parser_defaults(blob_parser=bytes)  # new parsers, new converters
    factory.create_parser("json").parse(_response({}, rng), services)
    assert compiled()[-1] == "DescribeServicesResponse" and len(compiled()) == 3


def test_other_protocols_get_botocore_s_parsers() -> None:
    """Only the json protocol is compiled; the factory's defaults still reach botocore's other parsers."""
    factory = _factory()
    assert type(factory.create_parser("json")) is parsing.CompiledJSONParser
    for protocol in ("query", "ec2", "rest-json", "rest-xml", "smithy-rpc-v2-cbor"):
        assert type(factory.create_parser(protocol)) is botocore.parsers.PROTOCOL_PARSERS[protocol]


def test_task_definition_corpus_is_there() -> None:
    """The shared corpus the sandbox test registers is found (otherwise that test would check little)."""
    assert TASK_DEFINITIONS, f"no task definitions in {CORPUS}"


# -- remembered answers -----------------------------------------------------------------------------------


def _again(response: dict[str, Any], request_id: str) -> dict[str, Any]:
    """The same answer (the very bytes) to a later request: its own headers and request ID."""
    headers = HeadersDict(dict(response["headers"].items()))
    headers["x-amzn-RequestId"] = request_id
    return {**response, "headers": headers, "body": bytes(bytearray(response["body"]))}


def test_the_same_bytes_again_are_the_result_parsed_then(captured, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A DescribeServices answer byte for byte the same as an earlier one is not decoded again: its result
    holds the very service descriptions parsed then, under its own top level and ResponseMetadata, and is
    still exactly botocore's."""
    response, shape = captured["DescribeServices"][0]
    factory = _factory()
    first = factory.create_parser("json").parse(response, shape)
    later = _again(response, "req-later")
    loads = mock.Mock(wraps=json.loads)
    with monkeypatch.context() as patched:
        patched.setattr(parsing.json, "loads", loads)
        second = factory.create_parser("json").parse(later, shape)
    assert loads.call_count == 0
    assert _assert_same(later, shape, factory) == second
    assert second["services"] is first["services"] and len(second["services"]) == 10
    assert second is not first and second["ResponseMetadata"] is not first["ResponseMetadata"]
    assert second["ResponseMetadata"]["RequestId"] == "req-later"
    assert first["ResponseMetadata"].get("RequestId") != "req-later"  # the first answer's own, untouched


def test_other_bytes_and_other_operations_are_parsed_anew(captured) -> None:  # type: ignore[no-untyped-def]
    """One changed byte makes a new parse; an operation outside ``REMEMBERED`` (DescribeTaskDefinition) is
    parsed anew even for the same bytes."""
    response, shape = captured["DescribeServices"][0]
    factory = _factory()
    first = factory.create_parser("json").parse(response, shape)
    changed = {**response, "body": response["body"].replace(b'"desiredCount": 1', b'"desiredCount": 2', 1)}
    second = _assert_same(changed, shape, factory)
    assert second["services"] is not first["services"]
    assert second["services"][0]["desiredCount"] == 2

    td_response, td_shape = next(
        (r, s) for r, s in captured["DescribeTaskDefinition"] if r["status_code"] == 200
    )
    assert td_shape.name not in parsing.REMEMBERED
    one = factory.create_parser("json").parse(td_response, td_shape)
    two = factory.create_parser("json").parse(_again(td_response, "req-2"), td_shape)
    assert (
        one["taskDefinition"] == two["taskDefinition"] and one["taskDefinition"] is not two["taskDefinition"]
    )


def _clusters_body(i: int) -> bytes:
    return json.dumps({"clusters": [{"clusterName": f"c{i}", "status": "ACTIVE"}]}).encode()


def test_remembered_answers_are_bounded_least_recently_used_first() -> None:
    """With room for two answers, a third forgets the one used least recently, which is then parsed anew."""
    shape = _SESSION.get_service_model("ecs").operation_model("DescribeClusters").output_shape
    rng = random.Random(9)
    bodies = [
        json.dumps({"clusters": [{"clusterName": f"c{i}", "status": "ACTIVE"}]}).encode() for i in range(3)
    ]
    factory = _factory()
    factory.converters = parsing.Converters(
        parse_timestamp, base64.b64decode, remember_bytes=2 * len(bodies[0])
    )
    parser = factory.create_parser("json")

    def clusters(i: int) -> Any:
        return parser.parse(_response(bodies[i], rng), shape)["clusters"]

    a, b = clusters(0), clusters(1)
    assert clusters(0) is a  # used again: now b is the least recently used
    c = clusters(2)
    assert clusters(0) is a and clusters(2) is c
    assert clusters(1) is not b and clusters(1) == b


def test_answers_not_asked_for_in_two_observations_are_forgotten() -> None:
    """After each observation (``forget_unused``), an answer not asked for since the one before is forgotten:
    a service that changed leaves no stale answer behind; one asked for in either is kept."""
    shape = _SESSION.get_service_model("ecs").operation_model("DescribeClusters").output_shape
    rng = random.Random(10)
    bodies = [
        json.dumps({"clusters": [{"clusterName": f"c{i}", "status": "ACTIVE"}]}).encode() for i in range(2)
    ]
    factory = _factory()
    parser = factory.create_parser("json")

    def clusters(i: int) -> Any:
        return parser.parse(_response(bodies[i], rng), shape)["clusters"]

    a, b = clusters(0), clusters(1)
    factory.forget_unused()  # both asked for during the observation that just ended
    assert clusters(0) is a  # asked for again in the next
    factory.forget_unused()  # b was not: forgotten
    assert clusters(0) is a
    assert clusters(1) is not b and clusters(1) == b
