"""The quality classifier on its own: the fastText module, training, held-out metrics, cards and bad input.

Real fastText training and prediction on built-in planted texts (articles against page chrome and spam), and on
the 499 human-labelled DCLM texts of the shared corpora where they exist.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datatrove.data import Document
from typer.testing import CliRunner

from orchestration.demo_data import demo_texts
from pipelines.common.inputs import InputError
from pipelines.curate.filters import FineWebQualityConfig
from pipelines.quality.backend import training_fasttext
from pipelines.quality.config import ClassifierSettings
from pipelines.quality.evaluate import LINE_PUNCT_THRESHOLD, line_punct_ratio, roc_auc
from pipelines.quality.examples import read_examples, read_labelled, split
from pipelines.quality.model import QualityModel, QualityModelError, card_path, check_model
from pipelines.quality.train import ModelOutputError, train_classifier
from tests.conftest import REPO_ROOT
from tests.quality_helpers import SMALL, boilerplate_texts, texts_jsonl, train_planted, write_jsonl


def test_the_fasttext_module_can_train_and_the_language_filter_still_works() -> None:
    import fasttext

    assert hasattr(fasttext, "train_supervised"), f"{fasttext.__file__} is fasttext-predict's; run `make install`"
    assert training_fasttext() is fasttext
    from pipelines.curate.filters import ReasonedLanguageFilter

    language = ReasonedLanguageFilter(["en"], 0.65)
    assert language.filter(Document(text=demo_texts(1)[0], id="en")) is True
    german = "Der alte Garten hat im Sommer den kleinen Markt besucht, weil die Menschen mehr wissen wollten."
    assert language.filter(Document(text=german, id="de")) == (False, "wrong_language")


def test_a_prediction_only_fasttext_is_named_with_its_fix(tmp_path: Path) -> None:
    # What fasttext-predict installs: a `fasttext` module with load_model but no train_supervised.
    fake = tmp_path / "fasttext"
    fake.mkdir()
    (fake / "__init__.py").write_text("def load_model(path):\n    raise NotImplementedError\n")
    code = "from pipelines.quality.backend import training_fasttext\ntraining_fasttext()"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO_ROOT}"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode != 0
    assert "FastTextBackendError" in result.stderr and "cannot train" in result.stderr
    assert "pip install --force-reinstall --no-deps 'fasttext-numpy2-wheel==" in result.stderr


def test_planted_texts_are_ranked_and_training_is_deterministic(tmp_path: Path) -> None:
    model_path = train_planted(tmp_path / "a")
    card = json.loads(card_path(model_path).read_text())
    assert card["labels"] == ["negative", "positive"] and card["positive_label"] == "positive"
    assert card["score"] == "probability" and (card["n_train"], card["n_test"]) == (108, 12)
    assert card["accuracy"] == 1.0 and card["auc"] == 1.0
    assert [d["role"] for d in card["data"]] == ["positive", "negative"] and all(
        d["documents"] == 60 for d in card["data"]
    )
    assert card["model_sha256"] == check_model(model_path).sha256

    # Texts it never saw: every article above every page of chrome and spam.
    model = QualityModel.load(model_path)
    good, bad = model.score(demo_texts(30, seed=99)), model.score(boilerplate_texts(30, seed=99))
    assert good.min() > bad.max() and good.min() > 0.5 > bad.max()

    again = train_planted(tmp_path / "b")
    assert json.loads(card_path(again).read_text())["model_sha256"] == card["model_sha256"]
    other_seed = train_planted(tmp_path / "c", SMALL.model_copy(update={"seed": 1}))
    assert json.loads(card_path(other_seed).read_text())["model_sha256"] != card["model_sha256"]


def test_integer_labels_score_the_expected_value(tmp_path: Path) -> None:
    articles, chrome = demo_texts(40, seed=3), boilerplate_texts(40, seed=3)
    mixed = [a + "\n" + c for a, c in zip(articles[20:], chrome[20:], strict=True)]
    records = [{"text": t, "score": 2} for t in articles[:20]] + [{"text": t, "score": 0} for t in chrome[:20]]
    records += [{"text": t, "score": 1.0} for t in mixed]  # an integral float label is the class 1
    data = write_jsonl(tmp_path / "edu.jsonl", records)
    card = train_classifier(read_labelled([str(data)], label_field="score"), tmp_path / "edu.bin", SMALL)
    assert card["labels"] == [0, 1, 2] and card["positive_label"] == 2 and card["score"] == "expected_value"
    model = QualityModel.load(tmp_path / "edu.bin")
    scores = model.score(demo_texts(10, seed=8) + boilerplate_texts(10, seed=8))
    assert ((scores >= 0) & (scores <= 2)).all()
    assert scores[:10].min() > scores[10:].max()


def test_class_names_need_a_positive_label(tmp_path: Path) -> None:
    records = [{"text": t, "label": "hq"} for t in demo_texts(10)]
    records += [{"text": t, "label": "cc"} for t in boilerplate_texts(10)]
    data = write_jsonl(tmp_path / "named.jsonl", records)
    examples = read_labelled([str(data)])
    with pytest.raises(ValueError, match="--positive-label"):
        train_classifier(examples, tmp_path / "named.bin", SMALL)
    with pytest.raises(ValueError, match="not one of the classes"):
        train_classifier(examples, tmp_path / "named.bin", SMALL, positive_label="good")
    card = train_classifier(examples, tmp_path / "named.bin", SMALL, positive_label="hq")
    assert card["positive_label"] == "hq" and card["score"] == "probability"


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        (['{"text": "a", "label": 1}', '{"text": "b", "label": 0}', "{broken"], "line 3: invalid JSON"),
        (['{"text": "a", "label": 2.5}'], "line 1: label 2.5 is not a class"),
        (['{"text": "a", "label": true}'], "line 1: label True is not a class"),
        (['{"text": "a"}'], "line 1: no field 'label'"),
        (['{"text": 7, "label": 1}'], "line 1: field 'text' is int"),
        (['{"text": "a", "label": "two words"}'], "without spaces"),
        (['{"text": "a", "label": 1}', '{"text": "b", "label": "x"}'], "mix integers and class names"),
        (['{"text": "a", "label": 1}', '{"text": "b", "label": 1}'], r"at least two classes, found \['1'\]"),
    ],
)
def test_bad_labelled_records_are_named(tmp_path: Path, lines: list[str], error: str) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=error) as info:
        read_labelled([str(path)])
    assert str(path) in str(info.value) or "mix" in error


def test_parquet_labels_and_missing_columns(tmp_path: Path) -> None:
    table = pa.table({"body": demo_texts(4) + boilerplate_texts(4), "quality": [1.0] * 4 + [0.0] * 4})
    pq.write_table(table, tmp_path / "labels.parquet")
    examples = read_labelled([str(tmp_path / "labels.parquet")], text_field="body", label_field="quality")
    assert examples.labels == [1] * 4 + [0] * 4
    assert examples.data[0]["sha256"] and examples.data[0]["documents"] == 8
    with pytest.raises(InputError, match=r"no column \['label'\]"):
        read_labelled([str(tmp_path / "labels.parquet")], text_field="body")
    with pytest.raises(InputError, match="either --data or --positive"):
        read_examples([str(tmp_path / "labels.parquet")], [str(tmp_path)], [], "body", "quality")
    with pytest.raises(InputError, match="no training data"):
        read_examples([], [], [])


def test_split_is_stratified_and_seeded() -> None:
    labels = [0] * 90 + [1] * 10
    train, test = split(labels, 0.1, seed=5)
    assert sorted(train + test) == list(range(100))
    assert sum(labels[i] for i in test) == 1 and len(test) == 10
    assert split(labels, 0.1, seed=5) == (train, test) and split(labels, 0.1, seed=6) != (train, test)
    assert split([0, 0, 1, 1], 0.9, seed=0)[0]  # each class keeps a training example


def test_auc_and_line_punctuation() -> None:
    assert roc_auc(np.array([True, True, False, False]), np.array([0.9, 0.8, 0.2, 0.1])) == 1.0
    assert roc_auc(np.array([True, False]), np.array([0.5, 0.5])) == 0.5  # ties count half
    assert roc_auc(np.array([True, False, True, False]), np.array([0.1, 0.2, 0.3, 0.4])) == 0.25
    assert roc_auc(np.array([True, True]), np.array([0.1, 0.2])) is None
    assert line_punct_ratio("One sentence.\nno stop\n\nAnother one!") == pytest.approx(2 / 3)


def test_baseline_threshold_is_curates_fineweb_threshold() -> None:
    """The baseline cuts where curate's FineWeb filter and datatrove's cut (quality keeps its own constant, as it
    does not import curate)."""
    from datatrove.pipeline.filters.fineweb_quality_filter import FineWebQualityFilter

    assert LINE_PUNCT_THRESHOLD == FineWebQualityConfig().line_punct_thr == FineWebQualityFilter().line_punct_thr


def test_missing_damaged_and_foreign_models_are_refused(tmp_path: Path) -> None:
    model = train_planted(tmp_path)
    with pytest.raises(QualityModelError, match="does not exist"):
        check_model(tmp_path / "nope.bin")

    cardless = tmp_path / "cardless.bin"
    cardless.write_bytes(model.read_bytes())
    with pytest.raises(QualityModelError, match="has no card cardless.json"):
        check_model(cardless)

    # A truncated copy with the original's card: fastText itself would not fail on it (it allocates without
    # bound), so the sha256 check must stop it before fastText reads a byte.
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(model.read_bytes()[:100_000])
    card_path(truncated).write_text(card_path(model).read_text())
    with pytest.raises(QualityModelError, match="damaged or replaced"):
        QualityModel.load(truncated)

    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"not a model at all" * 100)
    card_path(garbage).write_text(card_path(model).read_text())
    with pytest.raises(QualityModelError, match="not a fastText .bin file"):
        check_model(garbage)

    card_path(garbage).write_text('{"labels": [0, 1]}')
    with pytest.raises(QualityModelError, match="the card lacks"):
        check_model(garbage)


def test_training_never_overwrites_foreign_files(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs.bin"
    theirs.write_bytes(b"someone else's file")
    good = texts_jsonl(tmp_path / "good.jsonl", demo_texts(6))
    bad = texts_jsonl(tmp_path / "bad.jsonl", boilerplate_texts(6))
    examples = read_examples([], [str(good)], [str(bad)])
    with pytest.raises(ModelOutputError, match="is not a FineForge quality model"):
        train_classifier(examples, theirs, SMALL)
    assert theirs.read_bytes() == b"someone else's file"
    with pytest.raises(ModelOutputError, match=r"must end in \.bin"):
        train_classifier(examples, tmp_path / "model.ftz", SMALL)


def test_dclm_labels_beat_the_line_punctuation_baseline(corpora: Path, tmp_path: Path) -> None:
    """Issue 12: held-out accuracy and AUC on the 499 DCLM-labelled texts, against a one-heuristic baseline."""
    data = corpora / "dclm-quality" / "majority_data.jsonl"
    settings = ClassifierSettings(buckets=200_000)  # 80 MB instead of 800; the same held-out AUC here
    card = train_classifier(read_labelled([str(data)]), tmp_path / "dclm.bin", settings)
    assert (card["n_train"], card["n_test"]) == (449, 50) and card["labels"] == [0, 1]
    assert card["auc"] > 0.8 and card["accuracy"] > 0.7
    assert card["auc"] > card["baseline"]["auc"] + 0.05


def test_train_command_prints_held_out_metrics_and_names_bad_input(tmp_path: Path) -> None:
    from cli import app

    good = texts_jsonl(tmp_path / "good.jsonl", demo_texts(30, seed=2))
    bad = texts_jsonl(tmp_path / "bad.jsonl", boilerplate_texts(30, seed=2))
    out = tmp_path / "cli.bin"
    command = ["quality", "train", "--out", str(out), "--positive", str(good), "--negative", str(bad)]
    small = ["--buckets", "20000", "--dim", "16", "--test-fraction", "0.2"]
    result = CliRunner().invoke(app, command + small)
    assert result.exit_code == 0, result.output
    assert "trained on 48 texts, held out 12: accuracy 1.000, AUC 1.000" in result.output
    assert "baseline, FineWeb line-punctuation ratio >= 0.12" in result.output
    assert json.loads(out.with_suffix(".json").read_text())["settings"]["test_fraction"] == 0.2

    for args, error in [
        (command + ["--test-fraction", "1.5"], "test_fraction"),
        (command + ["--lr", "0"], "lr"),
        (command + ["--data", str(good)], "either --data or --positive"),
        (["quality", "train", "--out", str(out), "--data", str(tmp_path / "missing.jsonl")], "no such file"),
        (["quality", "train", "--out", str(tmp_path), "--data", str(good)], "must end in .bin"),
    ]:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and error in result.output and "Traceback" not in result.output, result.output
