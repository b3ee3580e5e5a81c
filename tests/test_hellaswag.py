"""HellaSwag completion scoring (the suite's hellaswag task, `trainer.evals`): the masking and the per-character
choice against a direct per-ending computation, the official JSONL format, the CLI on a trainer checkpoint, and
clear errors for malformed records."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from cli import app
from model import tokenizer
from model.gpt2 import GPT, config_from_preset
from trainer.checkpoint import save_checkpoint
from trainer.evals.data import task_file
from trainer.evals.suite import predict, read_items, score_items
from trainer.evals.tasks import TASKS

# Items in the official hellaswag_val.jsonl layout (field names and types as in rowanz/hellaswag), own text.
ITEMS = [
    ("Baking bread", "A man kneads a ball of dough on a floured table.", "He",
     ["places the dough in a bowl and covers it with a towel.", "jumps into a swimming pool with the dough.",
      "paints the table bright green.", "sings to the oven until it turns off."], 0),
    ("Riding a bike", "A girl pedals a bicycle along a park path.", "She",
     ["turns into a fish and swims away.", "rings the bell as she passes a man walking a dog.",
      "reads a newspaper upside down.", "eats the handlebars."], 1),
    ("Washing dishes", "A woman fills a sink with warm soapy water.", "She",
     ["throws the plates out of the window.", "plants tomatoes in the sink.",
      "scrubs each plate with a sponge and rinses it.", "calls the plates on the phone."], 2),
    ("Playing guitar", "A boy sits on a stool holding an acoustic guitar.", "He",
     ["eats the guitar strings one by one.", "uses the guitar as a boat.", "sets the guitar on fire.",
      "strums a few chords and starts to sing."], 3),
]  # fmt: skip


def write_items(path, items=ITEMS):
    with open(path, "w") as f:
        for i, (label_text, ctx_a, ctx_b, endings, label) in enumerate(items):
            record = {"ind": i, "activity_label": label_text, "ctx_a": ctx_a, "ctx_b": ctx_b,
                      "ctx": f"{ctx_a} {ctx_b}", "split": "val", "split_type": "indomain", "label": label,
                      "endings": endings, "source_id": f"test~{i}"}  # fmt: skip
            f.write(json.dumps(record) + "\n")
    return path


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(config_from_preset("tiny")).eval()


def hellaswag(model, path, limit=None):
    return score_items(model, read_items("hellaswag", path, limit), torch.device("cpu"))


def loss_per_char(model, ctx: str, ending: str) -> float:
    """The summed loss of the ending's tokens per character of " " + ending, for one sequence alone (no padding)."""
    ctx_tokens, end_tokens = tokenizer.encode(ctx), tokenizer.encode(" " + ending)
    tokens = torch.tensor([ctx_tokens + end_tokens])
    with torch.no_grad():
        logits, _ = model(tokens)
    targets = tokens[0, len(ctx_tokens) :]
    return F.cross_entropy(logits[0, len(ctx_tokens) - 1 : -1], targets, reduction="sum").item() / len(" " + ending)


def test_scoring_picks_the_lowest_loss_per_character(model, tmp_path):
    path = write_items(tmp_path / "hs.jsonl")
    for item, encoded in zip(ITEMS, read_items("hellaswag", path), strict=True):
        losses = [loss_per_char(model, f"{item[1]} {item[2]}", e) for e in item[3]]
        _, pred_norm = predict(model, encoded, torch.device("cpu"))
        assert pred_norm == min(range(4), key=losses.__getitem__)


def test_context_longer_than_the_model_is_cropped(model, tmp_path):
    long_ctx = " ".join(["The quick brown fox jumps over the lazy dog."] * 40)  # > 256 tokens
    path = write_items(tmp_path / "long.jsonl", [("Long", long_ctx, "Then", ITEMS[0][3], 0)])
    result = hellaswag(model, path)
    assert result["n"] == 1 and result["acc_norm"] in (0.0, 1.0)


def test_cli_scores_a_training_checkpoint(model, tmp_path):
    data = write_items(tmp_path / "hs.jsonl")
    state = {"model": model.state_dict(), "model_config": model.config.to_dict(), "step": 1}
    ckpt = save_checkpoint(tmp_path / "run", state, keep=1)
    result = CliRunner().invoke(
        app, ["eval", "hellaswag", "--checkpoint", str(ckpt), "--data", str(data), "--limit", "3"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    expected = hellaswag(model, data, limit=3)
    assert out["items"] == 3 and out["acc_norm"] == expected["acc_norm"] and out["acc"] == expected["acc"]


def test_malformed_record_names_file_and_line(model, tmp_path):
    path = write_items(tmp_path / "bad.jsonl")
    lines = path.read_text().splitlines()
    bad = json.loads(lines[1])
    bad["endings"] = bad["endings"][:3]
    path.write_text("\n".join([lines[0], json.dumps(bad), *lines[2:]]) + "\n")
    with pytest.raises(
        ValueError, match=rf"{path}: line 2: not a hellaswag record \(a HellaSwag record needs 4 endings"
    ):
        hellaswag(model, path)
    unloadable = tmp_path / "empty.pt"  # exists, so it passes the first check, but would fail to load
    unloadable.write_bytes(b"")
    result = CliRunner().invoke(app, ["eval", "hellaswag", "--checkpoint", str(unloadable), "--data", str(path)])
    assert result.exit_code == 2 and f"{path}: line 2: not a hellaswag record" in result.output  # data read first


def test_default_file_comes_from_the_cache(tmp_path, monkeypatch):
    cached = tmp_path / "home" / "evals" / "hellaswag.jsonl"
    cached.parent.mkdir(parents=True)
    write_items(cached)
    monkeypatch.setenv("FINEFORGE_HOME", str(tmp_path / "home"))
    assert task_file(TASKS["hellaswag"], None) == cached
    checkpoint = tmp_path / "x.pt"  # present: a missing checkpoint is refused before the data is looked for
    checkpoint.write_bytes(b"")
    result = CliRunner().invoke(
        app, ["eval", "hellaswag", "--checkpoint", str(checkpoint), "--data", str(tmp_path / "nope.jsonl")]
    )
    assert result.exit_code == 2 and "nope.jsonl: hellaswag data file not found" in result.output
