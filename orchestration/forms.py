"""Deployment parameter schemas as the Prefect UI's run form needs them.

The UI bundled with Prefect 3.9 (`SchemaFormPropertyAnyOf`) opens an optional field, `anyOf [X, null]`, on the
branch that its value or its default picks. A `null` default picks the `null` branch, which shows only
'Property is type "None"' and no input. Without that default the form opens on X, empty; left empty, the
parameter is not sent and the flow's own default (None) applies. The server validates runs against the same
schema, and the flows' signatures and models keep their None defaults, so nothing else changes.
"""

from __future__ import annotations

from typing import Any

NULL = {"type": "null"}


def _fields(schema: Any) -> list[dict[str, Any]]:
    """Every field of a parameter schema: the flow's parameters and the properties of each model they use."""
    models = (schema.definitions or {}).values()
    return [*schema.properties.values(), *(prop for model in models for prop in model.get("properties", {}).values())]


def open_optional_fields(deployment: Any) -> Any:
    """Drop the `null` default of every optional field of a deployment's run form, so it opens on its input.

    Args:
        deployment: a `RunnerDeployment` (from `flow.to_deployment`), changed in place.

    Returns:
        The same deployment.
    """
    schema = deployment._parameter_openapi_schema  # what to_deployment derived from the flow; Prefect sends it as is
    for field in _fields(schema):
        if NULL in field.get("anyOf", []) and "default" in field and field["default"] is None:
            del field["default"]
    return deployment
