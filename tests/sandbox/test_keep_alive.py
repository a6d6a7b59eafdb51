"""The sandbox keeps HTTP/1.1 connections open between calls, as AWS endpoints do, and closes them when it
stops."""

from __future__ import annotations

import http.client
import json

import pytest

from agent.sandbox import server
from agent.sandbox.server import Sandbox

ECS_TARGET = "AmazonEC2ContainerServiceV20141113."
SIGNED = (
    "AWS4-HMAC-SHA256 Credential=testing/20261207/eu-west-1/ecs/aws4_request, SignedHeaders=host, Signature=0"
)


def _ecs(conn: http.client.HTTPConnection, operation: str, body: dict, **headers: str) -> tuple[dict, dict]:
    """One ECS JSON call on ``conn``: the answer's body and its headers (lower-cased names)."""
    conn.request(
        "POST",
        "/",
        body=json.dumps(body),
        headers={
            "X-Amz-Target": ECS_TARGET + operation,
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": SIGNED,
            **headers,
        },
    )
    answer = conn.getresponse()
    data = answer.read()
    assert answer.status == 200, data
    return json.loads(data), {k.lower(): v for k, v in answer.getheaders()}


def _connection(sandbox: Sandbox) -> http.client.HTTPConnection:
    host, port = sandbox.endpoint.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=10)


def test_calls_with_bodies_follow_each_other_on_one_connection() -> None:
    """Three calls, two with a body, are answered in turn on one TCP connection that stays open."""
    with Sandbox() as sandbox:
        conn = _connection(sandbox)
        created, headers = _ecs(conn, "CreateCluster", {"clusterName": "kept"})
        sock = conn.sock
        assert created["cluster"]["clusterName"] == "kept"
        assert "connection" not in headers and sock is not None
        listed, _ = _ecs(conn, "ListClusters", {})
        described, _ = _ecs(conn, "DescribeClusters", {"clusters": ["kept"]})
        assert conn.sock is sock  # http.client drops its socket when an answer closes the connection
        assert [a.rsplit("/", 1)[1] for a in listed["clusterArns"]] == ["kept"]
        assert described["clusters"][0]["status"] == "ACTIVE"
        conn.close()


def test_a_client_that_asks_to_close_gets_its_connection_closed() -> None:
    """A request with Connection: close is answered, and then the sandbox closes that connection."""
    with Sandbox() as sandbox:
        conn = _connection(sandbox)
        listed, headers = _ecs(conn, "ListClusters", {}, Connection="close")
        assert listed == {"clusterArns": []}
        assert headers["connection"] == "close" and conn.sock is None
        conn.close()


def test_a_body_over_the_limit_is_answered_and_closes_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """A body larger than the sandbox reads ahead gets werkzeug's own handling: answered, then closed."""
    monkeypatch.setattr(server, "KEEP_ALIVE_BODY_LIMIT", 8)
    with Sandbox() as sandbox:
        conn = _connection(sandbox)
        try:
            created, headers = _ecs(conn, "CreateCluster", {"clusterName": "large"})
            assert created["cluster"]["clusterName"] == "large"
            assert headers["connection"] == "close" and conn.sock is None
        finally:
            conn.close()


def test_stopping_the_sandbox_closes_the_connections_it_kept() -> None:
    """A connection kept open gets no answer after its sandbox stops, not even from the next sandbox."""
    with Sandbox() as first:
        conn = _connection(first)
        _ecs(conn, "CreateCluster", {"clusterName": "old"})
        sock = conn.sock
        assert sock is not None
    with Sandbox() as second:
        second.client("ecs").create_cluster(clusterName="new")
        sock.settimeout(10)
        try:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            answer = sock.recv(1024)
        except (ConnectionResetError, BrokenPipeError):
            answer = b""
        assert answer == b""  # the far end was shut when the first sandbox stopped
        sock.close()


def test_botocore_reuses_one_connection_for_many_calls() -> None:
    """Twenty calls of one boto3 client reach the sandbox on a single connection."""
    with Sandbox() as sandbox:
        ecs = sandbox.client("ecs")
        before = sandbox.connections_accepted
        for _ in range(20):
            ecs.list_clusters()
        assert sandbox.connections_accepted - before == 1
