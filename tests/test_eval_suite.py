"""The early-signal suite (`fineforge eval suite`): every task's published field layout (JSONL and Parquet), scores
equal to an independent scorer written here from the cloze formulation, HellaSwag equal to `fineforge eval
hellaswag`, checkpoints, run folders and Hugging Face folders alike, and one-line errors for bad input."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from cli import app
from model import tokenizer
from model.gpt2 import GPT, config_from_preset
from trainer.checkpoint import save_checkpoint
from trainer.evals.tasks import TASKS, parse_tasks
from trainer.hf import export_hf

# Records in each dataset's published layout (field names and types as on the Hugging Face Hub), own text.
RECORDS = {
    "hellaswag": [
        {"ind": 0, "activity_label": "Cooking", "ctx_a": "A man cracks two eggs into a bowl.", "ctx_b": "he",
         "ctx": "A man cracks two eggs into a bowl. he", "label": 1,
         "endings": ["paints the bowl blue.", "whisks them with a fork.", "throws the bowl away.", "sleeps."]},
        {"ind": 1, "activity_label": "Gardening", "ctx_a": "A woman kneels by a flower bed.", "ctx_b": "she",
         "ctx": "A woman kneels by a flower bed. she", "label": "0",
         "endings": ["pulls the weeds out.", "flies off.", "eats the soil.", "reads a map of the moon."]},
    ],
    "arc_easy": [
        {"id": "a1", "question": "Which of these is a liquid at room temperature?",
         "choices": {"text": ["iron", "water", "salt", "wood"], "label": ["A", "B", "C", "D"]}, "answerKey": "B"},
        {"id": "a2", "question": "What do plants need to make food?",
         "choices": {"text": ["sunlight", "sand", "plastic"], "label": ["1", "2", "3"]}, "answerKey": "1"},
    ],
    "arc_challenge": [
        {"id": "c1", "question": "Why does a metal spoon feel colder than a wooden one?",
         "choices": {"text": ["metal conducts heat away faster", "wood is wet", "metal is lighter",
                              "wood is older", "metal is magnetic"], "label": ["A", "B", "C", "D", "E"]},
         "answerKey": "A"},
    ],
    "piqa": [
        {"goal": "To keep bread fresh longer,", "sol1": "store it in a sealed bag.", "sol2": "leave it in the rain.",
         "label": 0},
        {"goal": "How do you cool hot soup quickly?", "sol1": "put it in the oven.", "sol2": "stir it in a wide bowl.",
         "label": 1},
    ],
    "siqa": [
        {"context": "Sam forgot his friend's birthday.", "question": "How would Sam feel afterwards?",
         "answerA": "proud", "answerB": "sorry", "answerC": "hungry", "label": "2"},
    ],
    "winogrande": [
        {"sentence": "The trophy did not fit in the suitcase because the _ was too big.", "option1": "trophy",
         "option2": "suitcase", "answer": "1"},
        {"sentence": "Maria lent her umbrella to Ana because _ was going out in the rain.", "option1": "Maria",
         "option2": "Ana", "answer": "2"},
    ],
    "openbookqa": [
        {"id": "o1", "question_stem": "A magnet will stick to",
         "choices": {"text": ["a glass jar", "a steel door", "a paper cup", "a rubber ball"],
                     "label": ["A", "B", "C", "D"]}, "answerKey": "B"},
    ],
    "commonsense_qa": [
        {"id": "q1", "question": "Where would you put a coat when you get home?", "question_concept": "coat",
         "choices": {"label": ["A", "B", "C", "D", "E"],
                     "text": ["closet", "oven", "bathtub", "mailbox", "fish tank"]}, "answerKey": "A"},
    ],
    "mmlu": [
        {"question": "What is 7 times 6?", "subject": "elementary_mathematics", "choices": ["36", "42", "48", "54"],
         "answer": 1},
        {"question": "Which organ pumps blood?", "subject": "anatomy", "choices": ["lung", "liver", "heart", "skin"],
         "answer": 2},
    ],
}  # fmt: skip
PARQUET_TASKS = {"arc_easy", "mmlu", "winogrande"}  # the rest as JSONL: both readers on the Hub's layouts


def write_task(folder, task, records):
    """Write a task's records as DIR/<task>.parquet or .jsonl; return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    if task in PARQUET_TASKS:
        path = folder / f"{task}.parquet"
        pq.write_table(pa.Table.from_pylist(records), path)
    else:
        path = folder / f"{task}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def cloze(task, r):
    """The test's own reading of the formulation: (contexts, continuations, gold) of one published record."""
    if task == "hellaswag":
        return [r["ctx"]] * 4, [" " + e for e in r["endings"]], int(r["label"])
    if task == "winogrande":
        before, after = r["sentence"].split("_")
        return [before + r["option1"], before + r["option2"]], [" " + after.strip()] * 2, int(r["answer"]) - 1
    if task == "piqa":
        q, answers, gold = r["goal"], [r["sol1"], r["sol2"]], r["label"]
    elif task == "siqa":
        q, answers = r["context"] + " " + r["question"], [r["answerA"], r["answerB"], r["answerC"]]
        gold = int(r["label"]) - 1
    elif task == "mmlu":
        q, answers, gold = r["question"], r["choices"], r["answer"]
    else:
        q = r["question_stem"] if task == "openbookqa" else r["question"]
        answers, gold = r["choices"]["text"], r["choices"]["label"].index(r["answerKey"])
    return ["Question: " + q + "\nAnswer:"] * len(answers), [" " + a for a in answers], gold


def logprob_alone(model, context, continuation):
    """Summed log-probability of the continuation, one unpadded sequence at a time."""
    ctx, cont = tokenizer.encode(context), tokenizer.encode(continuation)
    tokens = torch.tensor([ctx + cont])
    with torch.no_grad():
        logits, _ = model(tokens)
    logp = F.log_softmax(logits[0, len(ctx) - 1 : -1].double(), dim=-1)
    return float(logp[torch.arange(len(cont)), torch.tensor(cont)].sum())


def independent_score(model, task, records):
    """acc and acc_norm (per character) of a task, from the formulation, without the product's scorer."""
    acc = acc_norm = 0
    for r in records:
        contexts, continuations, gold = cloze(task, r)
        lps = [logprob_alone(model, c, t) for c, t in zip(contexts, continuations, strict=True)]
        norms = [lp / len(t) for lp, t in zip(lps, continuations, strict=True)]
        acc += max(range(len(lps)), key=lps.__getitem__) == gold
        acc_norm += max(range(len(norms)), key=norms.__getitem__) == gold
    return acc / len(records), acc_norm / len(records)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(config_from_preset("tiny")).eval()


@pytest.fixture(scope="module")
def run_dir(model, tmp_path_factory):
    state = {"model": model.state_dict(), "model_config": model.config.to_dict(), "step": 1}
    folder = tmp_path_factory.mktemp("run")
    save_checkpoint(folder, state, keep=1)
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evals")
    for task, records in RECORDS.items():
        write_task(folder, task, records)
    return folder


def invoke(*args):
    return CliRunner().invoke(app, ["eval", *map(str, args)])


def suite_json(*args, out):
    result = invoke("suite", *args, "--out", out)
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text()), result.output


def test_early_signal_names_all_nine_tasks():
    assert parse_tasks("early-signal") == list(RECORDS) == list(TASKS)
    assert parse_tasks("mmlu, piqa") == ["mmlu", "piqa"]
    with pytest.raises(ValueError, match="unknown task lambada"):
        parse_tasks("piqa,lambada")


def test_suite_agrees_with_an_independent_scorer_on_every_format(model, run_dir, data_dir, tmp_path):
    suite, printed = suite_json(
        "--checkpoint", run_dir, "--tasks", "early-signal", "--data-dir", data_dir, out=tmp_path / "suite.json"
    )
    assert set(suite["tasks"]) == set(RECORDS)
    for task, records in RECORDS.items():
        row = suite["tasks"][task]
        acc, acc_norm = independent_score(model, task, records)
        chance = sum(1 / len(cloze(task, r)[1]) for r in records) / len(records)
        assert (row["n"], row["acc"], row["acc_norm"]) == (len(records), acc, acc_norm), task
        assert math.isclose(row["random"], chance), task
        assert f"{task:<16}{len(records):>7}" in printed
    centred = [(r["acc_norm"] - r["random"]) / (1 - r["random"]) for r in suite["tasks"].values()]
    assert math.isclose(suite["centered"], sum(centred) / len(centred))


def test_score_follows_the_gold_label(model, run_dir, tmp_path):
    """The same item scores 1 when its gold is the model's top choice and 0 when it is the other one."""
    record = RECORDS["piqa"][0]
    contexts, continuations, _ = cloze("piqa", record)
    lps = [logprob_alone(model, c, t) for c, t in zip(contexts, continuations, strict=True)]
    best = max(range(2), key=lps.__getitem__)
    for gold, expected in ((best, 1.0), (1 - best, 0.0)):
        folder = tmp_path / f"gold{gold}"
        write_task(folder, "piqa", [{**record, "label": gold}])
        suite, _ = suite_json("--checkpoint", run_dir, "--tasks", "piqa", "--data-dir", folder, out=folder / "r.json")
        assert suite["tasks"]["piqa"]["acc"] == expected


def test_hellaswag_command_is_the_suites_hellaswag(run_dir, data_dir, tmp_path):
    single = invoke("hellaswag", "--checkpoint", run_dir, "--data", data_dir / "hellaswag.jsonl")
    assert single.exit_code == 0, single.output
    one = json.loads(single.output.strip().splitlines()[-1])
    suite, _ = suite_json(
        "--checkpoint", run_dir, "--tasks", "hellaswag", "--data-dir", data_dir, out=tmp_path / "h.json"
    )
    row = suite["tasks"]["hellaswag"]
    assert (one["items"], one["acc"], one["acc_norm"]) == (row["n"], row["acc"], row["acc_norm"]) != (0, 0, 0)


def test_checkpoint_file_and_hugging_face_folder_score_alike(model, run_dir, data_dir, tmp_path):
    hf = export_hf(model, tmp_path / "hf")
    checkpoint = next((run_dir / "checkpoints").glob("*.pt"))
    rows = []
    for source in (checkpoint, hf):
        suite, _ = suite_json("--checkpoint", source, "--tasks", "arc_easy,winogrande", "--data-dir", data_dir,
                              "--limit", "1", out=tmp_path / f"{source.name}.json")  # fmt: skip
        rows.append({t: (r["n"], r["acc"], r["acc_norm"]) for t, r in suite["tasks"].items()})
    assert rows[0] == rows[1] and rows[0]["arc_easy"][0] == 1


@pytest.mark.parametrize(
    ("task", "change", "message"),
    [
        ("arc_easy", {"answerKey": "Z"}, "not a arc_easy record"),
        ("winogrande", {"sentence": "No blank here."}, "exactly one '_' blank"),
        ("siqa", {"label": "7"}, "answer out of range"),
        ("mmlu", {"choices": None}, "not a mmlu record"),
    ],
)
def test_malformed_record_is_one_error_line_naming_file_and_record(run_dir, tmp_path, task, change, message):
    path = write_task(tmp_path / "bad", task, [RECORDS[task][0], {**RECORDS[task][0], **change}])
    result = invoke("suite", "--checkpoint", run_dir, "--tasks", task, "--data-dir", path.parent)
    where = "row 2" if task in PARQUET_TASKS else "line 2"
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert result.output.startswith(f"error: {path}: {where}: ") and message in result.output


def test_missing_task_file_and_unknown_task_are_one_line_errors(run_dir, data_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("suite", "--checkpoint", run_dir, "--tasks", "piqa", "--data-dir", empty)
    assert result.exit_code == 2 and result.output.startswith(f"error: {empty}: no piqa.jsonl or piqa.parquet")
    result = invoke("suite", "--checkpoint", run_dir, "--tasks", "gsm8k", "--data-dir", data_dir)
    assert result.exit_code == 2 and "unknown task gsm8k" in result.output


def test_out_file_of_something_else_is_not_overwritten(run_dir, data_dir, tmp_path):
    other = tmp_path / "notes.json"
    other.write_text('{"mine": 1}\n')
    result = invoke("suite", "--checkpoint", run_dir, "--tasks", "piqa", "--data-dir", data_dir, "--out", other)
    assert result.exit_code == 2 and "does not overwrite" in result.output
    assert other.read_text() == '{"mine": 1}\n'
