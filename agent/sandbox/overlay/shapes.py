"""botocore's ECS model as the overlay reads it: shape member lists, and replies conformed to or checked
against an output shape.

The overlay's field lists are derived from the ECS model, not typed twice; every reply is cut to
botocore's output shapes so that it parses with a real boto3 client.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import botocore.session


@cache
def _ecs_model() -> Any:
    return botocore.session.get_session().get_service_model("ecs")


def shape_members(shape_name: str) -> frozenset[str]:
    """Member names of an ECS model shape."""
    return frozenset(_ecs_model().shape_for(shape_name).members)


def conform(value: Any, shape_name: str) -> Any:
    """Deep-copy ``value`` keeping only what the ECS output shape ``shape_name`` declares."""
    return _conform(value, _ecs_model().shape_for(shape_name))


def _conform(value: Any, shape: Any) -> Any:
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: _conform(v, shape.members[k]) for k, v in value.items() if k in shape.members}
    if shape.type_name == "list" and isinstance(value, list):
        return [_conform(v, shape.member) for v in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: _conform(v, shape.value) for k, v in value.items()}
    return copy.deepcopy(value)


def shape_errors(value: Any, shape_name: str) -> list[str]:
    """Where raw JSON ``value`` does not fit the ECS shape ``shape_name``: unknown keys, wrong types,
    values outside an enum. botocore's parser silently drops unknown keys, so a reply can parse and
    still be wrong; tests run every simulated structure through this."""
    errors: list[str] = []
    _shape_errors(value, _ecs_model().shape_for(shape_name), shape_name, errors)
    return errors


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "blob": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "long": (int,),
    "double": (int, float),
    "float": (int, float),
    "timestamp": (int, float),  # the JSON protocol sends epoch seconds
}


def _shape_errors(value: Any, shape: Any, path: str, errors: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            errors.append(f"{path}: expected an object ({shape.name}), got {type(value).__name__}")
            return
        for key, item in value.items():
            if key not in shape.members:
                errors.append(f"{path}.{key}: not a member of {shape.name}")
            else:
                _shape_errors(item, shape.members[key], f"{path}.{key}", errors)
    elif kind == "list":
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _shape_errors(item, shape.member, f"{path}[{i}]", errors)
    elif kind == "map":
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        for key, item in value.items():
            _shape_errors(item, shape.value, f"{path}[{key!r}]", errors)
    else:
        wanted = _JSON_TYPES.get(kind, (object,))
        if not isinstance(value, wanted) or (kind != "boolean" and isinstance(value, bool)):
            errors.append(f"{path}: expected {kind}, got {type(value).__name__} {value!r}")
        elif kind == "string" and getattr(shape, "enum", None) and value not in shape.enum:
            errors.append(f"{path}: {value!r} is not one of {shape.enum}")
