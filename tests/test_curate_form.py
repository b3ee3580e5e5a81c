"""The Prefect `curate` form carries the recipe settings (extraction engine, PII, decontamination) to the config."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.utilities.callables import parameter_schema

from flows import CurateParams, curate
from pipelines.curate import CurateConfig, load_config, with_overrides


def test_form_fields_are_in_the_deployment_schema() -> None:
    schema = parameter_schema(curate).model_dump()
    fields = schema["definitions"]["CurateParams"]["properties"]
    assert {"extract_engine", "pii", "decontaminate_index", "decontaminate_action"} <= set(fields)
    assert "resiliparse" in str(fields["extract_engine"]) and "flag" in str(fields["decontaminate_action"])


def test_form_values_override_the_config(tmp_path: Path) -> None:
    index = tmp_path / "eval.idx"
    params = CurateParams(
        inputs=["x"],
        extract_engine="resiliparse",
        pii=False,
        decontaminate_index=str(index),
        decontaminate_action="flag",
    )
    cfg = with_overrides(load_config(None), params.config_overrides())
    assert cfg.extract.engine == "resiliparse" and not cfg.pii.enabled
    assert cfg.decontaminate.model_dump() == {"enabled": True, "index": str(index.resolve()), "action": "flag"}
    assert cfg.filters == CurateConfig().filters  # everything else stays the config's
    assert with_overrides(load_config(None), CurateParams(inputs=["x"]).config_overrides()) == CurateConfig()
    with pytest.raises(ValueError, match="emailz"):
        with_overrides(cfg, {"pii": {"emailz": True}})
