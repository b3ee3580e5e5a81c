"""The run forms the Prefect UI draws from each deployment's parameter schema: titles, defaults, optional fields.

The UI (prefect/server/ui, `SchemaFormPropertyAnyOf`) opens an optional field `anyOf [X, null]` on the branch
its default or value picks: a `null` default or value opens the `null` branch, which shows only 'Property is
type "None"' and no input. Defaults made by a `default_factory` are not in the schema, so the form starts empty.
"""

from __future__ import annotations

from typing import Any

import pytest

from flows import deployments


@pytest.fixture(scope="module")
def forms() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Deployment name -> (its default parameters, its parameter schema), as they are sent to the server."""
    return {d.name: (d.parameters, d._parameter_openapi_schema.model_dump()) for d in deployments()}


def _properties(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every form field: (`Model.field` or `parameter`, its schema)."""
    fields = [(name, prop) for name, prop in schema["properties"].items()]
    for model, definition in (schema.get("definitions") or {}).items():
        fields += [(f"{model}.{name}", prop) for name, prop in definition.get("properties", {}).items()]
    return fields


def _nulls(value: Any, path: str = "") -> list[str]:
    """Where a default parameter value holds None (the UI would open that field on its `null` branch)."""
    if isinstance(value, dict):
        return [p for key, v in value.items() for p in _nulls(v, f"{path}.{key}")]
    return [path] if value is None else []


def test_field_titles_spell_acronyms(forms) -> None:
    """pydantic titles `pii` "Pii" and `lr` "Lr"; the form shows proper words."""
    titles = {name: prop.get("title") for _, schema in forms.values() for name, prop in _properties(schema)}
    assert titles["CurateParams.pii"] == "PII"
    assert titles["AblationSpec.lr"] == titles["ClassifierSettings.lr"] == "Learning rate"
    assert not {"Pii", "Lr", "Nproc"} & set(titles.values())


def test_defaults_made_by_a_factory_are_in_the_schema(forms) -> None:
    from pipelines.ablate.spec import AblationSpec

    seeds = forms["ablation"][1]["definitions"]["AblationSpec"]["properties"]["seeds"]
    assert seeds["default"] == AblationSpec.model_fields["seeds"].get_default(call_default_factory=True) == [0, 1]


def test_optional_fields_open_on_their_input(forms) -> None:
    """No optional field starts on its `null` branch: no `null` default in the schema, no None in the
    deployment's default parameters, and the `null` branch never comes first."""
    for name, (parameters, schema) in forms.items():
        for field, prop in _properties(schema):
            branches = prop.get("anyOf", [])
            if {"type": "null"} in branches:
                assert branches[0] != {"type": "null"}, f"{name}: {field} opens on null"
                assert prop.get("default", "absent") is not None, f"{name}: {field} has a null default"
                assert prop.get("description"), f"{name}: {field} has no description"
        assert not _nulls(parameters), f"{name}: default parameters hold None at {_nulls(parameters)}"
