"""Hostile settings and inputs (issue 20): YAML with a key written twice, unreachable URLs, reports written over
files FineForge did not write, ablations that would fail late, decontamination indexes that cannot work.

Each case runs the real command and asserts exit code 2, one line `error: ...` naming the file or URL and the
problem, no traceback, and that nothing was written or overwritten.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def assert_one_line_error(result, *names: str) -> str:
    """Exit 2, a single `error:` line naming every one of `names`, no traceback; returns the line."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for name in names:
        assert name in lines[0], (name, result.output)
    return lines[0]


TWICE = "filters:\n  url:\n    enabled: false\ndedup:\n  exact: false\nfilters:\n  language:\n    enabled: false\n"
TWICE_NESTED = "filters:\n  language:\n    threshold: 0.5\n    enabled: false\n    threshold: 0.9\n"


@pytest.mark.parametrize(
    ("text", "where"),
    [(TWICE, "line 6, column 1: duplicate key 'filters' (first at line 1)"),
     (TWICE_NESTED, "line 5, column 5: duplicate key 'threshold' (first at line 3)")],
    ids=["section-twice", "nested-key-twice"],
)  # fmt: skip
def test_curate_config_with_a_key_twice(tmp_path: Path, text: str, where: str) -> None:
    config = tmp_path / "twice.yaml"
    config.write_text(text)
    (tmp_path / "docs.jsonl").write_text('{"text": "a document"}\n')
    out = tmp_path / "out"
    line = assert_one_line_error(invoke("config", "show", "--config", str(config)), str(config), where)
    assert "not valid YAML" in line
    result = invoke("curate", "--input", str(tmp_path / "docs.jsonl"), "--output", str(out), "--config", str(config))
    assert_one_line_error(result, str(config), where)
    assert not out.exists()


def test_train_config_with_a_key_twice(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("model: tiny\nsteps: 10\nlr: 0.001\nsteps: 20\n")
    out = tmp_path / "run"
    result = invoke("train", "--data", str(tmp_path / "shards"), "--out", str(out), "--config", str(config))
    assert_one_line_error(result, str(config), "line 4, column 1: duplicate key 'steps' (first at line 2)")
    assert not out.exists()


def test_ablation_variant_config_with_a_key_twice(tmp_path: Path) -> None:
    config = tmp_path / "variant.yaml"
    config.write_text(TWICE)
    (tmp_path / "docs.jsonl").write_text('{"text": "a document"}\n')
    (tmp_path / "eval.jsonl").write_text('{"text": "an evaluation document"}\n')
    out = tmp_path / "ablation"
    result = invoke("ablate", "--input", str(tmp_path / "docs.jsonl"), "--variant", f"a={config}",
                    "--eval-data", str(tmp_path / "eval.jsonl"), "--out", str(out))  # fmt: skip
    assert_one_line_error(result, "variant 'a'", str(config), "duplicate key 'filters' (first at line 1)")
    assert not out.exists()
