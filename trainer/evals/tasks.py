"""The early-signal tasks: each dataset's published record layout turned into cloze items (no torch here).

A cloze item is a list of (context, continuation) pairs, one per answer choice, and the index of the right one.
The model scores each continuation after its context; no choice is ever shown to it as a lettered option. This is
the "cloze formulation" (CF) that FineWeb's ablations used through lighteval, chosen because a small model scores
above chance on it long before it can answer lettered multiple-choice prompts (Penedo et al. 2024, FineWeb,
section 3; lighteval `src/lighteval/tasks/templates/multichoice.py`, `get_mcq_prompt_function` with
`CFFormulation`: "Question: ...\\nAnswer:" followed by each answer after a space).

Per task (lighteval source files cited; the prompts are FineForge's own reading of them):

- hellaswag (Rowan/hellaswag `ctx`, `endings`, `label`): the file's `ctx`, then each ending after a space, as
  llm.c `dev/data/hellaswag.py` and `fineforge eval hellaswag` have always scored it (lighteval
  `src/lighteval/tasks/templates/hellaswag.py` also strips WikiHow markers and re-capitalises; FineForge keeps the
  published `ctx` so its numbers stay comparable with llm.c's GPT-2 baseline).
- arc_easy, arc_challenge (allenai/ai2_arc), commonsense_qa (tau/commonsense_qa), openbookqa (allenai/openbookqa,
  `question_stem`): "Question: Q\\nAnswer:" and " " + each choice text; the gold is the choice whose `label`
  equals `answerKey` (lighteval `src/lighteval/tasks/tasks/arc.py`, `arc_prompt`).
- piqa (ybisk/piqa): "Question: goal\\nAnswer:" and " sol1" / " sol2"; `label` 0/1.
- siqa (allenai/social_i_qa): "Question: context question\\nAnswer:" and " answerA..C"; `label` "1".."3".
- mmlu (cais/mmlu): "Question: Q\\nAnswer:" and " " + each of the 4 `choices`; `answer` 0-3.
- winogrande (allenai/winogrande): partial scoring (Trinh & Le 2018, as lm-evaluation-harness scores it): the
  sentence up to the blank with each option filled in is the context, and the words after the blank are the one
  continuation scored under both contexts. (lighteval `src/lighteval/tasks/multilingual/adapters.py`,
  `winogrand_adapter`, instead puts the option into the continuation; partial scoring compares the same words
  and so needs no length normalisation.)

`random` of a task is the mean chance of guessing an item (1 / choices): 0.25 for 4 choices, 0.2 for
commonsense_qa's 5, 0.5 for piqa and winogrande; ARC has a few 3- and 5-choice items.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

EARLY_SIGNAL = "early-signal"


@dataclass(frozen=True)
class Item:
    """One cloze item: a (context, continuation) pair per choice and the index of the right choice."""

    choices: list[tuple[str, str]]
    label: int


@dataclass(frozen=True)
class Task:
    """A task of the suite: its name, the Hub dataset whose layout its files follow, and its formulation."""

    name: str
    dataset: str  # Hugging Face Hub id, subset and split the default file is
    fields: tuple[str, ...]  # the fields a record must have
    build: Callable[[dict[str, Any]], Item]


def _question(question: str, answers: list[str], label: int) -> Item:
    context = f"Question: {question.strip()}\nAnswer:"
    return Item([(context, f" {a.strip()}") for a in answers], label)


def _lettered(record: dict[str, Any], question: str) -> Item:
    choices = record["choices"]
    labels = [str(x).strip() for x in choices["label"]]
    return _question(question, [str(t) for t in choices["text"]], labels.index(str(record["answerKey"]).strip()))


def _hellaswag(record: dict[str, Any]) -> Item:
    if len(record["endings"]) != 4:
        raise ValueError("a HellaSwag record needs 4 endings")
    return Item([(record["ctx"], f" {e}") for e in record["endings"]], int(record["label"]))


def _piqa(record: dict[str, Any]) -> Item:
    return _question(record["goal"], [record["sol1"], record["sol2"]], int(record["label"]))


def _siqa(record: dict[str, Any]) -> Item:
    answers = [record["answerA"], record["answerB"], record["answerC"]]
    return _question(f"{record['context']} {record['question']}", answers, int(record["label"]) - 1)


def _winogrande(record: dict[str, Any]) -> Item:
    sentence = record["sentence"]
    if sentence.count("_") != 1:
        raise ValueError("a WinoGrande sentence needs exactly one '_' blank")
    before, after = sentence.split("_")
    continuation = f" {after.strip()}"
    options = [record["option1"], record["option2"]]
    return Item([(f"{before}{o}", continuation) for o in options], int(record["answer"]) - 1)


def _mmlu(record: dict[str, Any]) -> Item:
    return _question(record["question"], [str(c) for c in record["choices"]], int(record["answer"]))


TASKS: dict[str, Task] = {
    task.name: task
    for task in [
        Task("hellaswag", "Rowan/hellaswag validation", ("ctx", "endings", "label"), _hellaswag),
        Task("arc_easy", "allenai/ai2_arc ARC-Easy test", ("question", "choices", "answerKey"),
             lambda r: _lettered(r, r["question"])),
        Task("arc_challenge", "allenai/ai2_arc ARC-Challenge test", ("question", "choices", "answerKey"),
             lambda r: _lettered(r, r["question"])),
        Task("piqa", "ybisk/piqa validation", ("goal", "sol1", "sol2", "label"), _piqa),
        Task("siqa", "allenai/social_i_qa validation",
             ("context", "question", "answerA", "answerB", "answerC", "label"), _siqa),
        Task("winogrande", "allenai/winogrande winogrande_xl validation",
             ("sentence", "option1", "option2", "answer"), _winogrande),
        Task("openbookqa", "allenai/openbookqa main test", ("question_stem", "choices", "answerKey"),
             lambda r: _lettered(r, r["question_stem"])),
        Task("commonsense_qa", "tau/commonsense_qa validation", ("question", "choices", "answerKey"),
             lambda r: _lettered(r, r["question"])),
        Task("mmlu", "cais/mmlu all test", ("question", "subject", "choices", "answer"), _mmlu),
    ]
}  # fmt: skip


def parse_tasks(text: str) -> list[str]:
    """The task names of a `--tasks` value: comma-separated names, or `early-signal` for all of them.

    Raises:
        ValueError: an unknown or repeated name, or none.
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == [EARLY_SIGNAL]:
        return list(TASKS)
    unknown = [n for n in names if n not in TASKS]
    if unknown or not names:
        raise ValueError(
            f"--tasks {text!r}: unknown task {', '.join(unknown) or '(none given)'}; choose from "
            f"{EARLY_SIGNAL}, {', '.join(TASKS)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"--tasks {text!r}: a task is named twice")
    return names


def to_item(task: Task, record: dict[str, Any], where: str) -> Item:
    """Turn one published record of `task` into its cloze item, checking it.

    Args:
        task: the task.
        record: the record as read from its JSONL line or Parquet row.
        where: `FILE: line N` or `FILE: row N`, for the error message.

    Returns:
        The item.

    Raises:
        ValueError: naming `where` and the task when the record lacks a field or its answer is out of range.
    """
    missing = [f for f in task.fields if f not in record]
    if missing:
        raise ValueError(f"{where}: not a {task.name} record (no {', '.join(missing)}; it has {', '.join(record)})")
    try:
        item = task.build(record)
        ok = all(isinstance(c, str) and isinstance(t, str) and t.strip() for c, t in item.choices)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"{where}: not a {task.name} record ({e})") from e
    if not ok or not 0 <= item.label < len(item.choices):
        raise ValueError(f"{where}: not a {task.name} record (empty choice or answer out of range)")
    return item
