"""Ablations on built-in data: bits per byte, evaluation sets, the spec and folder rules, the verdict rule, and a
whole (small) ablation over the demo crawl with its contract, reports, overlap, reuse and `fineforge eval text`."""

from __future__ import annotations

import json
import math
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from cli import app
from model import tokenizer
from model.gpt2 import GPT, config_from_preset
from orchestration.demo_data import demo_texts, write_demo_crawl
from pipelines.ablate import record as record_file
from pipelines.ablate.evalsets import EvalSetError, eval_set_name, prepare_eval_set, text_stream
from pipelines.ablate.job import Ablation, AblationError, run_ablation
from pipelines.ablate.results import summary_rows, verdicts
from pipelines.ablate.spec import AblationSpec, SpecError, Variant, parse_seeds, parse_variant
from tests.conftest import REPO_ROOT
from tests.test_hellaswag import write_items
from trainer.evaluate import text_loss

FINEWEB = str(REPO_ROOT / "configs" / "fineweb.yaml")
NOFILTER = str(REPO_ROOT / "configs" / "nofilter.yaml")
SMALL_TOKENS = 2048  # 4 steps of the tiny preset's 512 tokens: enough to exercise every part, not to learn


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(config_from_preset("tiny")).eval()


def test_token_bytes_add_up_to_the_text():
    text = "Grüße aus Köln — naïve café, 東京 and emoji 🎉 in one line.\nSecond line."
    lengths = tokenizer.token_byte_lengths()
    assert sum(lengths[t] for t in tokenizer.encode(text)) == len(text.encode("utf-8"))
    assert lengths[tokenizer.EOT_TOKEN] == 0


def test_text_loss_scores_every_document_token_once(model):
    """Against a direct computation: one forward pass over the whole stream, EOT targets left out."""
    texts = ["The river ran past the old mill.", "A second, longer document about the village library."]
    stream = text_stream(texts)
    x = torch.tensor(stream[:-1], dtype=torch.long)[None]
    y = torch.tensor(stream[1:], dtype=torch.long)
    with torch.no_grad():
        logits, _ = model(x)
    losses = F.cross_entropy(logits[0], y, reduction="none")
    keep = y != tokenizer.EOT_TOKEN
    nats = float(losses[keep].double().sum())
    n_bytes = sum(len(t.encode()) for t in texts)
    whole = text_loss(model, stream, seq_len=stream.size, device="cpu")
    assert whole["tokens"] == int(keep.sum()) == stream.size - len(texts)
    assert whole["bytes"] == n_bytes
    assert whole["bpb"] == pytest.approx(nats / (math.log(2) * n_bytes), rel=1e-5)
    assert whole["loss"] == pytest.approx(nats / whole["tokens"], rel=1e-5)
    windowed = text_loss(model, stream, seq_len=5, device="cpu", batch_size=3)  # windows and a ragged batch
    assert (windowed["tokens"], windowed["bytes"]) == (whole["tokens"], whole["bytes"])
    direct = 0.0
    for start in range(0, stream.size - 1, 5):  # each window alone: context restarts every 5 tokens
        window = torch.tensor(stream[start : start + 6], dtype=torch.long)
        with torch.no_grad():
            logits, _ = model(window[None, :-1])
        per_token = F.cross_entropy(logits[0], window[1:], reduction="none")
        direct += float(per_token[window[1:] != tokenizer.EOT_TOKEN].double().sum())
    assert windowed["bpb"] == pytest.approx(direct / (math.log(2) * n_bytes), rel=1e-5)
    with pytest.raises(ValueError, match="exceeds the model's context"):
        text_loss(model, stream, seq_len=10_000, device="cpu")


def test_parse_variant_and_seeds():
    assert parse_variant("fineweb=configs/fineweb.yaml") == Variant(name="fineweb", config="configs/fineweb.yaml")
    for bad in ("fineweb", "=x.yaml", "a=", "../up=x.yaml", "eval=x.yaml", "a b=x.yaml"):
        with pytest.raises(SpecError, match="--variant"):
            parse_variant(bad)
    assert parse_seeds("0, 1,7") == [0, 1, 7]
    for bad in ("", "0,0", "-1", "a,b"):
        with pytest.raises(SpecError, match="--seeds"):
            parse_seeds(bad)


def spec(tmp_path, **kw) -> AblationSpec:
    """A spec over a small raw JSONL input and a one-document evaluation set (written here)."""
    (tmp_path / "in").mkdir(exist_ok=True)
    write_jsonl(tmp_path / "in" / "raw.jsonl", [{"text": t} for t in demo_texts(2)])
    write_jsonl(tmp_path / "eval.jsonl", [{"text": "held out"}])
    values = dict(
        inputs=[str(tmp_path / "in")],
        variants=[Variant(name="fineweb", config=FINEWEB), Variant(name="nofilter", config=NOFILTER)],
        eval_data=[str(tmp_path / "eval.jsonl")],
        out=str(tmp_path / "out"),
        tokens=SMALL_TOKENS,
    )
    return AblationSpec(**{**values, **kw})


def test_spec_checks_values_and_derives_equal_tokens(tmp_path):
    s = spec(tmp_path, tokens=1000, batch_tokens=256, seq_len=64)
    assert (s.steps, s.tokens_trained) == (4, 1024)  # whole steps: at most one batch above --tokens
    settings = s.train_settings()
    assert settings["batch_tokens"] % (settings["micro_batch"] * settings["seq_len"]) == 0
    assert settings["ckpt_every"] == 1 and settings["keep_checkpoints"] >= 4
    cases = {
        "variant names must be unique": dict(variants=[Variant(name="a", config=FINEWEB)] * 2),
        "exceeds the context": dict(seq_len=512),
        "multiple of seq_len": dict(batch_tokens=1000),
        "unknown model preset": dict(model="huge"),
        "distinct": dict(seeds=[1, 1]),
    }
    for message, change in cases.items():
        with pytest.raises(ValueError, match=message):
            spec(tmp_path, **change)
    with pytest.raises(ValueError):
        spec(tmp_path, tokens=0)


def test_verdict_needs_a_lead_larger_than_the_seed_spread():
    def rows(a: list[float], b: list[float], metric: str = "bpb") -> list[dict]:
        return [
            {"variant": name, "seed": seed, "eval_set": "web", "metric": metric, "value": value}
            for name, values in (("a", a), ("b", b))
            for seed, value in enumerate(values)
        ]

    (clear,) = verdicts(summary_rows(rows([1.50, 1.52], [1.70, 1.66])), seeds=2)
    assert clear["best"] == "a" and clear["decisive"] and clear["lead"] == pytest.approx(0.17)
    assert clear["spread"] == pytest.approx(0.04) and "a is better" in clear["text"]
    (noisy,) = verdicts(summary_rows(rows([1.50, 1.70], [1.62, 1.66])), seeds=2)
    assert noisy["best"] == "a" and not noisy["decisive"] and "within noise" in noisy["text"]
    (accuracy,) = verdicts(summary_rows(rows([0.30, 0.31], [0.40, 0.41], "acc_norm")), seeds=2)
    assert accuracy["best"] == "b" and accuracy["decisive"]  # higher is better for accuracy
    (single,) = verdicts(summary_rows(rows([1.5], [1.7])), seeds=1)
    assert not single["decisive"] and "one seed" in single["text"]


def test_eval_sets_are_told_apart_and_checked(tmp_path):
    texts = demo_texts(3, seed=5)
    text_set = prepare_eval_set(
        str(write_jsonl(tmp_path / "a.jsonl", [{"text": t} for t in texts])), "a", tmp_path / "ca"
    )
    assert (text_set.kind, text_set.size, text_set.metric) == ("text", 3, "bpb")
    pq.write_table(pa.table({"text": texts, "other": [1, 2, 3]}), tmp_path / "b.parquet")
    assert prepare_eval_set(str(tmp_path / "b.parquet"), "b", tmp_path / "cb").tokens == text_set.tokens
    choice_set = prepare_eval_set(str(write_items(tmp_path / "hs.jsonl")), "hs", tmp_path / "chs")
    assert (choice_set.kind, choice_set.size, choice_set.metric) == ("multiple_choice", 4, "acc_norm")
    again = prepare_eval_set(str(tmp_path / "hs.jsonl"), "hs", tmp_path / "chs")
    assert again == choice_set  # cached while the file is unchanged
    assert eval_set_name("/x/c4-val.jsonl.gz") == "c4-val"

    bad = {
        "neither a text record": [{"body": "x"}],
        "line 2: no field 'text'": [{"text": "fine"}, {"txt": "missing"}],
        "bad2.jsonl: line 1: not a hellaswag record (a HellaSwag": [{"ctx": "c", "endings": ["a", "b"], "label": 0}],
        "holds no records": [],
    }
    for i, (message, rows) in enumerate(bad.items()):
        path = write_jsonl(tmp_path / f"bad{i}.jsonl", rows)
        with pytest.raises(EvalSetError, match=re.escape(message)):
            prepare_eval_set(str(path), f"bad{i}", tmp_path / f"c{i}")
    with pytest.raises(EvalSetError, match="no such file"):
        prepare_eval_set(str(tmp_path / "missing.jsonl"), "m", tmp_path / "cm")


def test_output_folder_rules(tmp_path):
    """A foreign folder, another recipe in the same folder, or a variant name reused for another config: refused
    before anything is written."""
    foreign = tmp_path / "out"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    ablation = Ablation(spec(tmp_path))
    ablation.plan()
    with pytest.raises(AblationError, match="not empty and not an ablation folder"):
        ablation.claim()
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    (foreign / "notes.txt").unlink()
    ablation.claim()
    assert {p.name for p in foreign.iterdir()} == {"ablation-spec.json", "train.yaml", "fineweb", "nofilter"}

    other_recipe = Ablation(spec(tmp_path, tokens=4 * SMALL_TOKENS))
    other_recipe.plan()
    with pytest.raises(AblationError, match=r"other steps \(4 -> 16\)"):
        other_recipe.claim()
    renamed = tmp_path / "mine.yaml"
    renamed.write_text("filters:\n  url:\n    enabled: false\n")
    reused_name = Ablation(spec(tmp_path, variants=[Variant(name="fineweb", config=str(renamed))]))
    reused_name.plan()
    with pytest.raises(AblationError, match="give this recipe another variant name"):
        reused_name.claim()
    more_seeds = Ablation(spec(tmp_path, seeds=[0, 1, 2], eval_data=[str(tmp_path / "eval.jsonl")]))
    more_seeds.plan()
    more_seeds.claim()  # seeds, variants and evaluation sets may change between invocations

    broken = tmp_path / "broken.yaml"
    broken.write_text("filters:\n  gopher_quality:\n    min_doc_wordz: 3\n")
    with pytest.raises(AblationError, match="(?s)variant 'x'.*broken.yaml.*min_doc_wordz"):
        Ablation(spec(tmp_path, variants=[Variant(name="x", config=str(broken))])).plan()
    with pytest.raises(AblationError, match="config file .* not found"):
        Ablation(spec(tmp_path, variants=[Variant(name="x", config=str(tmp_path / "nope.yaml"))])).plan()
    twins = spec(tmp_path, eval_data=[str(tmp_path / "eval.jsonl"), str(tmp_path / "sub" / "eval.jsonl")])
    with pytest.raises(AblationError, match="two sets are named eval"):
        Ablation(twins).plan()


@pytest.fixture(scope="module")
def small_ablation(tmp_path_factory):
    """A whole ablation over the demo crawl's JSONL: fineweb against nofilter, 2 seeds, a text set, a HellaSwag set
    and a set planted in the input (overlap). Small sets: scoring every checkpoint costs a forward pass each."""
    root = tmp_path_factory.mktemp("ablation")
    write_demo_crawl(root / "crawl")  # its JSONL part: 50 documents, spam and duplicates among them
    write_jsonl(root / "clean.jsonl", [{"text": t} for t in demo_texts(4, seed=7)])
    write_items(root / "choices.jsonl")
    posts = [json.loads(line) for line in (root / "crawl" / "docs.jsonl").read_text().splitlines()[:4]]
    write_jsonl(root / "leaked.jsonl", [{"text": post["text"]} for post in posts])
    ablation_spec = AblationSpec(
        inputs=[str(root / "crawl" / "docs.jsonl")],
        variants=[Variant(name="fineweb", config=FINEWEB), Variant(name="nofilter", config=NOFILTER)],
        eval_data=[str(root / "clean.jsonl"), str(root / "choices.jsonl"), str(root / "leaked.jsonl")],
        out=str(root / "out"),
        tokens=SMALL_TOKENS,
        seeds=[0, 1],
        training_concurrency=2,  # the two seeds side by side (the resume tests run them one at a time)
    )
    lines: list[str] = []
    record = run_ablation(ablation_spec, lines.append)
    return root, ablation_spec, record, lines


@pytest.mark.slow
def test_ablation_contract(small_ablation, tmp_path):
    root, ablation_spec, record, _ = small_ablation
    out = root / "out"
    assert json.loads((out / "ablation.json").read_text()) == record == record_file.recorded(out)
    rewritten = record_file.write(tmp_path, record_file.AblationRecord.model_validate(record))
    assert rewritten.read_bytes() == (out / "ablation.json").read_bytes()  # the owner writes what the job wrote
    assert [v["name"] for v in record["variants"]] == ["fineweb", "nofilter"]
    for variant in record["variants"]:
        summary = json.loads((out / variant["name"] / "curated" / "summary.json").read_text())
        manifest = json.loads((out / variant["name"] / "shards" / "manifest.json").read_text())
        assert variant["docs_out"] == summary["docs_out"]
        assert variant["train_tokens"] == manifest["total_tokens"]["train"] > 0
        assert manifest["total_tokens"]["val"] == 0  # the fixed sets replace a val split
        assert variant["epochs"] == round(SMALL_TOKENS / variant["train_tokens"], 3)
        assert set(variant) == {"name", "config", "config_hash", "docs_out", "train_tokens", "epochs"}
    nofilter = json.loads((out / "nofilter" / "curated" / "summary.json").read_text())
    after_extract = [s for s in nofilter["stages"] if s["name"] not in ("read", "extract")]
    assert all(s["docs_out"] == s["docs_in"] for s in after_extract)  # configs/nofilter.yaml filters nothing
    assert [(s["name"], s["kind"], s["size"]) for s in record["eval_sets"]] == [
        ("clean", "text", 4),
        ("choices", "multiple_choice", 4),
        ("leaked", "text", 4),
    ]
    assert len(record["results"]) == 2 * 2 * 3
    for row in record["results"]:
        assert set(row) == {"variant", "seed", "eval_set", "metric", "value", "tokens_trained"}
        assert row["tokens_trained"] == SMALL_TOKENS
        assert row["metric"] == ("acc_norm" if row["eval_set"] == "choices" else "bpb")
        run_dir = out / row["variant"] / "runs" / f"seed-{row['seed']}"
        evals = json.loads((run_dir / "evals.json").read_text())
        assert evals["points"][-1]["values"][row["eval_set"]] == row["value"]
        assert [p["step"] for p in evals["points"]] == [1, 2, 3, 4]  # a checkpoint every quarter, all scored
        assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["step_000004.pt"]  # scored ones deleted
    for row in record["summary"]:
        values = [
            r["value"] for r in record["results"] if (r["variant"], r["eval_set"]) == (row["variant"], row["eval_set"])
        ]
        assert (row["min"], row["max"], row["seeds"]) == (min(values), max(values), 2)
        assert row["mean"] == pytest.approx(sum(values) / 2)
    overlap = {(o["variant"], o["eval_set"]): o["documents"] for o in record["overlap"]}
    assert overlap[("nofilter", "leaked")] == 4 and overlap[("nofilter", "clean")] == 0
    assert overlap[("fineweb", "leaked")] <= 4
    seed_runs = [r for r in record["runs"] if r["variant"] == "fineweb"]
    assert seed_runs[0]["samples"] and seed_runs[0]["samples"][0]["text"].startswith("The meaning of life is")


@pytest.mark.slow
def test_ablation_reports(small_ablation):
    root, _, record, lines = small_ablation
    out = root / "out"
    html = (out / "report.html").read_text()
    blob = re.search(r'<script type="application/json" id="ablation-data">(.*?)</script>', html, re.S).group(1)
    assert json.loads(blob) == record
    for verdict in record["verdicts"]:
        assert f'data-decisive="{str(verdict["decisive"]).lower()}"' in html
    assert 'href="fineweb/curated/report.html"' in html and 'href="nofilter/curated/report.html"' in html
    assert "data:image/png;base64," in html and 'id="funnel-variants"' in html and 'id="compare-funnel"' in html
    for href in re.findall(r'(?:href|src)="([^"]+)"', html):
        assert href.startswith(("#", "data:image/png;base64,")) or (out / href).is_file(), href
    data_report = (out / "fineweb" / "curated" / "report.html").read_text()
    assert 'href="../../report.html"' in data_report  # `fineforge report` links a variant to its ablation
    assert any(line.startswith("report: ") for line in lines)


@pytest.mark.slow
def test_rerun_reuses_everything_and_eval_text_agrees(small_ablation):
    root, ablation_spec, record, _ = small_ablation
    out = root / "out"
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/runs/*/run.json")}
    lines: list[str] = []
    again = run_ablation(ablation_spec, lines.append)
    assert sum("finished earlier, reused" in line for line in lines) == 2 + 2 + 4  # curate, tokenize, each run
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/runs/*/run.json")} == before
    assert again["results"] == record["results"]

    run_dir = out / "fineweb" / "runs" / "seed-1"
    result = CliRunner().invoke(
        app, ["eval", "text", "--checkpoint", str(run_dir), "--data", str(root / "clean.jsonl")]
    )
    assert result.exit_code == 0, result.output
    scored = json.loads(result.output)
    final = next(r for r in record["results"] if (r["variant"], r["seed"], r["eval_set"]) == ("fineweb", 1, "clean"))
    assert scored["seq_len"] == 128 and scored["documents"] == 4
    assert scored["bpb"] == pytest.approx(final["value"], rel=1e-6)
    bad = CliRunner().invoke(
        app, ["eval", "text", "--checkpoint", str(run_dir), "--data", str(root / "choices.jsonl")]
    )
    assert bad.exit_code == 2 and "multiple-choice" in bad.output


def test_cli_reports_bad_arguments(tmp_path):
    runner = CliRunner()
    raw = write_jsonl(tmp_path / "raw.jsonl", [{"text": t} for t in demo_texts(2)])
    base = ["ablate", "--input", str(raw), "--eval-data", str(tmp_path / "e.jsonl"), "--out", str(tmp_path / "o")]
    result = runner.invoke(app, [*base, "--variant", "no-equals-sign"])
    assert result.exit_code == 2 and "expected NAME=CONFIG.yaml" in result.output
    result = runner.invoke(app, [*base, "--variant", f"a={FINEWEB}", "--seeds", "1,1"])
    assert result.exit_code == 2 and "--seeds" in result.output
    result = runner.invoke(app, [*base, "--variant", f"a={FINEWEB}", "--seq-len", "1024"])
    assert result.exit_code == 2 and "exceeds the context" in result.output
    result = runner.invoke(app, [*base, "--variant", f"a={FINEWEB}"])
    assert result.exit_code == 2 and "e.jsonl: no such file" in result.output  # the missing set, named
    assert not (tmp_path / "o").exists()  # refused before anything was written
    write_jsonl(tmp_path / "e.jsonl", [{"text": "held out"}])
    result = runner.invoke(app, [*base, "--variant", f"a={FINEWEB}", "--input", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "nowhere" in result.output and not (tmp_path / "o").exists()
    (tmp_path / "o").write_text("someone's file")
    result = runner.invoke(app, [*base, "--variant", f"a={FINEWEB}"])
    assert result.exit_code == 2 and f"{tmp_path / 'o'}: is a file" in result.output, result.output
    assert "Traceback" not in result.output and (tmp_path / "o").read_text() == "someone's file"


def test_no_training_tokens_is_a_clear_error(tmp_path):
    """A recipe that keeps (nearly) nothing fails naming the variant, before a trainer starts."""
    ablation = Ablation(spec(tmp_path))
    shards = ablation.variant_dir("fineweb") / "shards"
    shards.mkdir(parents=True)
    (shards / "manifest.json").write_text(json.dumps({"total_tokens": {"train": 100, "val": 0}}))
    with pytest.raises(AblationError, match="variant 'fineweb' kept 100 training tokens"):
        ablation.train_config("fineweb", 0)


@pytest.mark.slow
def test_a_run_whose_trainer_still_runs_is_refused(small_ablation):
    """After a SIGKILL of the supervisor its trainer lives until its next log line: a rerun must not start a
    second trainer on the same run directory meanwhile."""
    import subprocess

    from pipelines.common.processes import stop_process
    from pipelines.common.stage import run_stage
    from trainer.process import PGID_FILE
    from trainer.stage import TrainerBusy, TrainStage

    _, ablation_spec, _, _ = small_ablation
    ablation = Ablation(ablation_spec)
    ablation.plan()
    run_dir = ablation.run_dir("fineweb", 5)
    run_dir.mkdir(parents=True)
    orphan = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        (run_dir / PGID_FILE).write_text(str(orphan.pid))
        with pytest.raises(TrainerBusy, match=f"process group {orphan.pid}"):
            run_stage(TrainStage(ablation.train_config("fineweb", 5)))
    finally:
        stop_process(orphan, grace=1)
    assert not (run_dir / "checkpoints").exists()
