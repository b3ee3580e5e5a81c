"""Tokenize settings are declared once (`pipelines.tokenize.settings.TokenizeSettings`): their ranges, and the
CLI options and the Prefect forms that take them from there."""

from __future__ import annotations

import pytest
import typer

from cli import app
from flows import TokenizeOptions, deployments
from pipelines.tokenize import TokenizeError, TokenizeSettings
from pipelines.tokenize.settings import MIN_SHARD_TOKENS

FORM_FIELDS = ["shard_tokens", "val_tokens", "seed"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"shard_tokens": MIN_SHARD_TOKENS - 1},
            "shard_tokens must be >= 1,025 (one GPT-2 context and its next token)",
        ),
        ({"val_tokens": -1}, "val_tokens must be >= 0 or None, got -1"),
        ({"seed": -1}, "seed must be >= 0 or None, got -1"),
        ({"seed": 2**64}, "seed must be < 18,446,744,073,709,551,616 or None"),
        ({"shard_tokens": "many"}, "shard_tokens: Input should be a valid integer"),
        ({"shard_size": 5}, "shard_size: Extra inputs are not permitted"),
    ],
)
def test_out_of_range_settings_are_one_line_errors(values, message):
    with pytest.raises(TokenizeError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        TokenizeSettings(**values)
    assert "\n" not in str(err.value)


def test_limits_and_unset_values_are_accepted():
    settings = TokenizeSettings(shard_tokens=MIN_SHARD_TOKENS, val_tokens=0, seed=2**64 - 1)
    assert settings.seed == 2**64 - 1
    assert TokenizeSettings(val_tokens=None, seed=None).model_dump() == {
        "shard_tokens": 100_000_000,
        "val_tokens": None,
        "seed": None,
        "text_column": "text",
    }
    with pytest.raises(ValueError):  # frozen: the settings are the run's identity
        settings.seed = 1  # type: ignore[misc]


def test_the_config_hash_is_that_of_earlier_runs():
    """Shards made before the settings became a pydantic model stay complete (same hash, same manifest)."""
    assert TokenizeSettings().config_hash() == "aa129e7fbcd143c3"
    custom = TokenizeSettings(shard_tokens=20_000, val_tokens=4096, seed=None, text_column="body")
    assert custom.config_hash() == "e4f639b64de4bc0d"


def test_the_flow_forms_take_the_fields_from_the_model():
    """The form fields of the tokenize and pipeline deployments are the model's fields, schema and all."""
    model = TokenizeSettings.model_json_schema()["properties"]
    assert {name: TokenizeOptions.model_json_schema()["properties"][name] for name in FORM_FIELDS} == {
        name: model[name] for name in FORM_FIELDS
    }
    schemas = {d.name: d._parameter_openapi_schema.model_dump() for d in deployments()}
    tokenize_form = schemas["tokenize"]["definitions"]["TokenizeParams"]["properties"]
    pipeline_form = schemas["pipeline"]["definitions"]["TokenizeOptions"]["properties"]
    for name in FORM_FIELDS:
        # a null default is left out of a form (tests/test_forms.py: the UI would open the field empty)
        expected = {key: v for key, v in model[name].items() if not (key == "default" and v is None)}
        assert tokenize_form[name] == pipeline_form[name] == expected, name
    assert TokenizeOptions(shard_tokens=5000, seed=None).settings() == TokenizeSettings(shard_tokens=5000, seed=None)


def test_the_cli_options_equal_the_model():
    """`fineforge tokenize` states its defaults (the model's import is too heavy for every command); they must
    equal the model's. Its values are validated into the model (`run_tokenize`), so the ranges are the model's."""
    command = typer.main.get_command(app).commands["tokenize"]
    options = {p.name: p for p in command.params}
    fields = TokenizeSettings.model_fields
    for name in ("shard_tokens", "val_tokens", "seed", "text_column"):
        assert options[name].default == fields[name].default, name
