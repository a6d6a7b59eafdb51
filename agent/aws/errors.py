"""Translate botocore errors into the agent's typed errors at the adapter edge."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from agent.errors import PermanentError, TransientError

_TRANSIENT_CODES = {
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ServerException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
}


class AwsPermanentError(PermanentError):
    """AWS refused the request in a way retrying will not fix (bad parameter, access denied)."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code


@contextmanager
def translated() -> Iterator[None]:
    """Re-raise botocore failures as TransientError or AwsPermanentError."""
    try:
        yield
    except ClientError as e:
        err = e.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        op = e.operation_name
        if code in _TRANSIENT_CODES or status >= 500:
            raise TransientError(f"{op}: {code}: {err.get('Message', '')}") from e
        raise AwsPermanentError(op, code, str(err.get("Message", ""))) from e
    except NoCredentialsError as e:
        raise PermanentError(
            "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID, or point "
            "AWS_ENDPOINT_URL at the sandbox)"
        ) from e
    except (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError) as e:
        raise TransientError(f"cannot reach AWS: {e}") from e
    except BotoCoreError as e:
        raise TransientError(str(e)) from e
