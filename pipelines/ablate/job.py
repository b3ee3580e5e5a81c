"""`fineforge ablate`: is recipe A better data than recipe B? Curate, tokenize and train each, evaluate alike.

Every variant (a curate config) is curated from the same raw inputs, tokenized, and trained once per seed with
the same model, settings and number of tokens; every run is scored on the same fixed evaluation sets. This is
how FineWeb chose its filters and thresholds (Penedo et al. 2024, section 3: the same small model trained on
each candidate dataset for the same tokens, compared on held-out evaluations), and how DCLM and nanochat decide.

Layout of DIR (`--out`):

    ablation-spec.json        the inputs and training recipe this folder belongs to (written by the first run)
    train.yaml                the trainer settings every run shares (only --data, --out and --seed differ)
    eval/<set>/               each evaluation set, tokenized once (`pipelines.ablate.evalsets`)
    <variant>/variant.json    the variant's config file and config_hash
    <variant>/curated/        `CurateStage` output (summary.json, data/, rejects/, quarantine/, report.html)
    <variant>/shards/         `TokenizeStage` output (train shards only: the fixed sets replace a val split)
    <variant>/runs/seed-<s>/  `TrainStage` output, plus evals.json (scores at each checkpoint, samples)
    ablation.json             the contract (fields in `pipelines.ablate.record`), written after every run is scored
    report.html               the comparison report (`pipelines.ablate.report`)

Every stage runs through `pipelines.common.stage.run_stage`, so a rerun of the same command after a crash
reuses finished curate, tokenize and training runs and resumes the unfinished one from its newest checkpoint
(at most one `eval_points`-th of a run is lost, a quarter by default). Variants that share a prefix of curate steps
(same inputs and settings up to that step, so the same step keys) share that work: each variant's `CurateStage`
links the finished step folders of the others (`share_from`) instead of recomputing them.

Ownership: one ablation at a time holds DIR's lock (`pipelines.common.locks`). DIR must be new, empty, or an
ablation over the same inputs and training recipe (variants, seeds and evaluation sets may change between
invocations); a variant folder must hold that variant's config. Anything else is refused before a file is
written. The only files ablate deletes are the checkpoints of its own runs
once they are scored (all but the newest).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from pipelines.ablate import evalsets
from pipelines.ablate import record as record_file
from pipelines.ablate.evalsets import LOWER_IS_BETTER, EvalSet, prepare_eval_set
from pipelines.ablate.mixture import mixture_identity, read_mixture, source_specs
from pipelines.ablate.plan import build_plan
from pipelines.ablate.results import results_rows, summary_rows, verdicts
from pipelines.ablate.spec import (
    ABLATION_PROMPTS,
    EVAL_DIR,
    REPORT_FILE,
    SAMPLE_TOKENS,
    SPEC_FILE,
    TRAIN_FILE,
    AblationSpec,
)
from pipelines.common.files import atomic_write, make_output_dir, read_json, write_json_atomic
from pipelines.common.hashing import stable_hash
from pipelines.common.inputs import discover_inputs
from pipelines.common.layout import DatasetLayout
from pipelines.common.locks import LOCK_FILE, folder_lock
from pipelines.common.processes import signals_raise
from pipelines.common.run_record import recorded_run
from pipelines.common.stage import Stage, StageOutcome, run_stage
from pipelines.curate import CurateStage, config_hash, load_config
from pipelines.curate import summary as curate_summary
from pipelines.curate.logs import datatrove_logs_to
from pipelines.mix import MixStage
from pipelines.shards import MANIFEST_NAME
from pipelines.tokenize import TokenizeSettings, TokenizeStage
from trainer.config import TrainConfig, build_config

VARIANT_FILE = "variant.json"
EVALS_FILE = "evals.json"
Echo = Callable[[str], None]


class AblationError(ValueError):
    """An ablation that cannot run or continue; the message names the folder or variant and what to do."""


class Ablation:
    """One ablation: fixed inputs, variants, evaluation sets and training recipe, over an output folder DIR.

    Like a stage, the constructor only stores the spec; `plan()` reads and checks the configs, `claim()` makes
    DIR this ablation's, and each piece of work is a method the CLI (`run_ablation`) and the `ablation` flow call
    in turn: `prepare_eval_sets`, then per variant `curate_stage`, `tokenize_stage`, and per seed a
    `trainer.stage.TrainStage` over `train_config` and `evaluate_run`; `finish` writes ablation.json and the reports.

    Args:
        spec: the ablation's arguments.
    """

    def __init__(self, spec: AblationSpec):
        self.spec = spec
        self.out = Path(spec.out).expanduser().resolve()
        self._scorer: evalsets.Scorer | None = None
        self.eval_sets: list[EvalSet] = []
        self.suite_sets: list[EvalSet] = []  # the `--eval-suite` tasks among eval_sets (the aggregate's parts)

    def plan(self) -> None:
        """Load every variant's config and fix the training recipe and evaluation set names (reads only).

        Raises:
            AblationError: an unreadable or invalid config, or two evaluation sets with one name.
            EvalSetError: an evaluation set that is not one readable JSONL or Parquet file, or cannot be scored.
            FileNotFoundError: an `--eval-suite` task without a file (the message says how to provide it).
            InputError: inputs that do not exist or hold no input file.
        """
        self.configs, self.config_hashes, self.mixtures, self.source_configs = {}, {}, {}, {}
        for variant in self.spec.variants:
            path = Path(variant.config).expanduser()
            if not path.is_file():
                raise AblationError(f"variant {variant.name!r}: config file {path} not found")
            try:
                if (mixture := read_mixture(path)) is None:
                    self.configs[variant.name] = load_config(path)
                    self.config_hashes[variant.name] = config_hash(self.configs[variant.name])
                else:
                    self.mixtures[variant.name] = mixture
                    self.config_hashes[variant.name], configs = mixture_identity(mixture)
                    self.source_configs.update({(variant.name, src): cfg for src, cfg in configs.items()})
            except ValueError as e:
                raise AblationError(f"variant {variant.name!r}: {e}") from None
        self.train_settings = self.spec.train_settings()
        self.identity = self.spec.identity()
        self.eval_names = [evalsets.eval_set_name(p) for p in self.spec.eval_data]
        if repeated := sorted({n for n in self.eval_names if self.eval_names.count(n) > 1}):
            raise AblationError(
                f"--eval-data: two sets are named {', '.join(repeated)} (a set's name is its file name without "
                "extensions); rename one of the files"
            )
        for path in self.spec.eval_data:  # read whole: a set that cannot be scored fails now, not after training
            evalsets.read_eval_set(evalsets.check_eval_file(path))
        self.suite_files = self.suite_task_files()
        if clash := sorted(set(self.eval_names) & {*self.suite_files, evalsets.AGGREGATE}):
            raise AblationError(f"--eval-data: {', '.join(clash)} is the name of a suite task or its aggregate")
        for task, path in self.suite_files.items():
            evalsets.read_eval_set(evalsets.check_eval_file(str(path)), task)
        discover_inputs(self.spec.inputs, exclude=[self.out])

    def suite_task_files(self) -> dict[str, Path]:
        """The file of every `--eval-suite` task: in `--eval-suite-dir`, or downloaded once (`trainer.evals.data`).

        Raises:
            FileNotFoundError: a task without a file; the message names the task and how to provide it.
        """
        from trainer.evals.data import task_file
        from trainer.evals.tasks import TASKS, parse_tasks

        if not self.spec.eval_suite:
            return {}
        return {t: task_file(TASKS[t], self.spec.eval_suite_dir) for t in parse_tasks(self.spec.eval_suite)}

    def variant_dir(self, name: str) -> Path:
        """DIR/<variant>."""
        return self.out / name

    def layout(self, name: str) -> DatasetLayout:
        """The folders of one variant: DIR/<variant>/{curated,shards,runs/seed-<s>}."""
        return DatasetLayout.variant(self.variant_dir(name))

    def source_layout(self, name: str, source: str) -> DatasetLayout:
        """The folders of a mixture variant's `config` source: DIR/<variant>/sources/<source>/{curated,shards}."""
        return DatasetLayout.variant(self.variant_dir(name) / "sources" / source)

    def run_dir(self, name: str, seed: int) -> Path:
        """DIR/<variant>/runs/seed-<seed>."""
        return self.layout(name).run(seed)

    def claim(self) -> None:
        """Make DIR this ablation's, or refuse (naming what is in the way) before anything is written.

        Raises:
            AblationError: DIR holds files of something else, an ablation of other inputs or training recipe,
                or a variant folder made with another config.
        """
        spec_path = self.out / SPEC_FILE
        recorded = read_json(spec_path)
        recorded = recorded if isinstance(recorded, dict) else None
        if recorded is None and self.out.is_dir() and any(p.name != LOCK_FILE for p in self.out.iterdir()):
            raise AblationError(
                f"{self.out}: not empty and not an ablation folder (no readable {SPEC_FILE}); FineForge does not "
                "write into folders it did not make: give a new or empty --out"
            )
        if recorded is not None and recorded.get("identity") != self.identity:
            changed = _changed_keys(recorded.get("identity") or {}, self.identity)
            raise AblationError(
                f"{self.out}: holds an ablation with other {', '.join(changed)}; every run of an ablation "
                "shares its inputs and training settings, so give a new --out for these"
            )
        for variant in self.spec.variants:
            self._claim_variant(variant.name, variant.config)
        make_output_dir(self.out)
        if recorded is None:
            write_json_atomic(spec_path, {"identity": self.identity, "hash": stable_hash(self.identity)})
        train_yaml = yaml.safe_dump(self.train_settings, sort_keys=False)
        if not (self.out / TRAIN_FILE).is_file() or (self.out / TRAIN_FILE).read_text() != train_yaml:
            with atomic_write(self.out / TRAIN_FILE, "w") as f:
                f.write(train_yaml)
        for variant in self.spec.variants:
            record = {"name": variant.name, "config": variant.config, "config_hash": self.config_hashes[variant.name]}
            folder = self.variant_dir(variant.name)
            folder.mkdir(exist_ok=True)
            if read_json(folder / VARIANT_FILE) != record:
                write_json_atomic(folder / VARIANT_FILE, record)

    def _claim_variant(self, name: str, config: str) -> None:
        folder = self.variant_dir(name)
        if not folder.exists() or not any(folder.iterdir()):  # new, or made by a claim that stopped right there
            return
        recorded = read_json(folder / VARIANT_FILE)
        if not isinstance(recorded, dict):
            raise AblationError(f"{folder}: exists but is not a variant folder of this ablation ({VARIANT_FILE})")
        if recorded.get("config_hash") != self.config_hashes[name]:
            raise AblationError(
                f"variant {name!r}: {folder} was made with config {recorded.get('config')} (config_hash "
                f"{recorded.get('config_hash')}), not {config} ({self.config_hashes[name]}); give this recipe "
                "another variant name"
            )

    def prepare_eval_sets(self) -> list[EvalSet]:
        """Read and tokenize every evaluation set into DIR/eval/ (once per file content).

        Raises:
            EvalSetError: an unusable set, naming the file and record.
        """
        self.eval_sets = [
            prepare_eval_set(path, name, self.out / EVAL_DIR / name)
            for path, name in zip(self.spec.eval_data, self.eval_names, strict=True)
        ]
        suite = [prepare_eval_set(str(p), t, self.out / EVAL_DIR / t, t) for t, p in self.suite_files.items()]
        self.suite_sets = suite
        self.eval_sets += suite + ([evalsets.aggregate_set(suite)] if suite else [])
        return self.eval_sets

    def curate_stage(self, name: str) -> CurateStage:
        """The curate stage of a variant: its config over the shared inputs, into DIR/<variant>/curated.

        Steps that another curation of this ablation already finished with the same inputs and settings (the same
        step keys: say two quality thresholds over one filter pass) are linked from it, not recomputed.
        """
        return self._curate(self.configs[name], self.layout(name).curated)

    def _curate(self, config: Any, folder: Path) -> CurateStage:
        curated = [self.layout(v).curated for v in self.configs]
        curated += [self.source_layout(v, src).curated for v, src in self.source_configs]
        others = [other for other in curated if other != folder]
        return CurateStage(config, self.spec.inputs, folder, workers=self.spec.workers, share_from=others)

    def tokenize_stage(self, name: str) -> TokenizeStage:
        """The tokenize stage of a variant: all curated documents into train shards (no val split)."""
        return self._tokenize(self.layout(name))

    def _tokenize(self, folders: DatasetLayout) -> TokenizeStage:
        """Curated documents into train shards. The shard folder is this ablation's own (the variant folder was
        claimed), so shards of an earlier curate output are replaced rather than refused; a run trained on them
        then refuses to resume."""
        settings = TokenizeSettings(val_tokens=0)
        return TokenizeStage([str(folders.curated)], folders.shards, settings, self.spec.workers, overwrite=True)

    def data_stages(self, name: str) -> list[tuple[str, Stage]]:
        """The stages that make a variant's training shards, in order, each with a label for the log.

        A curate recipe: `curate`, `tokenize`. A mixture (`pipelines.ablate.mixture`): `curate <source>` and
        `tokenize <source>` for each `config` source, then `mix` into DIR/<variant>/shards with exactly the
        ablation's training tokens, so every source gives its weight's share of what each run trains on.
        """
        if name not in self.mixtures:
            return [("curate", self.curate_stage(name)), ("tokenize", self.tokenize_stage(name))]
        mixture, stages, shards_of = self.mixtures[name], [], {}
        for src in (s.name for s in mixture.sources if s.config is not None):
            folders = self.source_layout(name, src)
            stages += [(f"curate {src}", self._curate(self.source_configs[(name, src)], folders.curated)),
                       (f"tokenize {src}", self._tokenize(folders))]  # fmt: skip
            shards_of[src] = folders.shards
        mix = MixStage(
            source_specs(mixture, shards_of),
            self.layout(name).shards,
            self.spec.tokens_trained,
            seed=mixture.seed,
            max_epochs=mixture.max_epochs,
            workers=self.spec.workers,
        )
        return [*stages, ("mix", mix)]

    def curated_data(self, name: str) -> list[Path]:
        """The `data/` folders of a variant's curated text (a mixture's `config` sources; shard sets have none)."""
        if name not in self.mixtures:
            return [self.layout(name).curated / "data"]
        return [self.source_layout(name, src).curated / "data" for v, src in self.source_configs if v == name]

    def train_config(self, name: str, seed: int) -> TrainConfig:
        """The config of one run: the shared DIR/train.yaml plus its shards, folder and seed.

        Raises:
            AblationError: the variant's shards hold less than one training sequence.
        """
        manifest = read_json(self.variant_dir(name) / "shards" / MANIFEST_NAME) or {}
        tokens = (manifest.get("total_tokens") or {}).get("train", 0)
        if tokens <= self.spec.sequence_length:
            raise AblationError(
                f"variant {name!r} kept {tokens} training tokens, fewer than one sequence of "
                f"{self.spec.sequence_length + 1}: its recipe dropped (nearly) everything; see "
                f"{curate_summary.summary_path(self.variant_dir(name) / 'curated')}"
            )
        flags = {"data": str(self.layout(name).shards), "out": str(self.run_dir(name, seed)), "seed": seed}
        return build_config(flags, self.out / TRAIN_FILE)

    def train_env(self) -> dict[str, str] | None:
        """The environment of each trainer: with N runs at once, each gets 1/N of this machine's cores as OpenMP
        threads (torch's CPU thread pool), so N trainers never oversubscribe it; None (inherit) for one run."""
        runs = self.spec.training_concurrency
        if runs == 1:
            return None
        return {**os.environ, "OMP_NUM_THREADS": str(max(1, len(os.sched_getaffinity(0)) // runs))}

    def evaluate_run(self, name: str, seed: int) -> dict[str, Any]:
        """Score a finished run's checkpoints on every evaluation set, sample its final model, then delete all
        but its newest checkpoint. Scores already in evals.json for an unchanged set are kept, not recomputed.

        Returns:
            The run's evals.json: `eval_sets` {name: `EvalSet.score_key`}, `points` [{step, tokens, values {set:
            value}}] (one per checkpoint, the last at the final step) and `samples` [{prompt, text}].

        Raises:
            AblationError: the run has not completed its steps.
        """
        from model.sampling import sample_text
        from trainer.checkpoint import list_checkpoints, load_model

        run_dir = self.run_dir(name, seed)
        run = recorded_run(run_dir) or {}
        if run.get("status") != "completed" or run.get("step") != self.spec.steps:
            raise AblationError(f"{run_dir}: training has not completed {self.spec.steps} steps; rerun to resume it")
        current = {s.name: s.score_key for s in self.eval_sets}
        previous = read_json(run_dir / EVALS_FILE) or {}
        still_valid = {n for n, sha in (previous.get("eval_sets") or {}).items() if current.get(n) == sha}
        points = {
            p["step"]: {**p, "values": {k: v for k, v in p["values"].items() if k in still_valid}}
            for p in previous.get("points", [])
        }
        checkpoints = list_checkpoints(run_dir)
        if not checkpoints or checkpoints[-1][0] != self.spec.steps:
            raise AblationError(f"{run_dir}: no checkpoint of the final step {self.spec.steps}")
        if self._scorer is None:
            self._scorer = evalsets.Scorer(self.spec.sequence_length)
        batch_tokens = self.train_settings["batch_tokens"]
        samples = previous.get("samples") or []
        for step, path in checkpoints:
            point = points.setdefault(step, {"step": step, "tokens": step * batch_tokens, "values": {}})
            missing = [s for s in self.eval_sets if s.name not in point["values"]]
            final = step == self.spec.steps
            if missing or (final and not samples):
                model = load_model(path, self._scorer.device)
                point["values"].update(self._scorer.score(model, missing))
                evalsets.add_aggregate(point["values"], self.suite_sets)
                if final and not samples:
                    samples = [
                        {"prompt": prompt, "text": sample_text(model, prompt, 1, SAMPLE_TOKENS, 0.8, seed=i)[0]}
                        for i, prompt in enumerate(ABLATION_PROMPTS)
                    ]
        record = {
            "variant": name,
            "seed": seed,
            "eval_sets": current,
            "points": [points[step] for step in sorted(points)],
            "samples": samples,
        }
        write_json_atomic(run_dir / EVALS_FILE, record)
        for _, path in checkpoints[:-1]:  # scored; the newest stays for sampling and `fineforge eval`
            path.unlink(missing_ok=True)
        return record

    def finish(self) -> dict[str, Any]:
        """Write ablation.json, each variant's data report and the comparison report.

        Returns:
            The ablation record (ablation.json).
        """
        from pipelines.ablate.report import write_ablation_report
        from pipelines.report import build_report

        record = self.ablation_record()
        record_file.write(self.out, record)
        record = record.model_dump()
        for variant in self.spec.variants:
            folders = self.layout(variant.name)
            if variant.name not in self.mixtures:
                build_report(folders.curated, shards=folders.shards, train=folders.run(self.spec.seeds[0]))
            for name, src in (key for key in self.source_configs if key[0] == variant.name):
                sources = self.source_layout(name, src)
                build_report(sources.curated, shards=sources.shards)
        write_ablation_report(self.out, record)
        return record

    def ablation_record(self) -> record_file.AblationRecord:
        """The contents of ablation.json, read from the finished stages' contract files.

        Returns:
            The `AblationRecord` (its fields: `pipelines.ablate.record`).
        """
        tokens_trained = self.spec.tokens_trained
        variants, runs, overlap = [], [], []
        for variant in self.spec.variants:
            folder = self.variant_dir(variant.name)
            summary = curate_summary.recorded(folder / "curated") or {}
            manifest = read_json(folder / "shards" / MANIFEST_NAME) or {}
            train_tokens = (manifest.get("total_tokens") or {}).get("train", 0)
            variants.append(
                {
                    "name": variant.name,
                    "config": variant.config,
                    "config_hash": self.config_hashes[variant.name],
                    "docs_out": summary.get("docs_out"),
                    "train_tokens": train_tokens,
                    "epochs": round(tokens_trained / train_tokens, 3) if train_tokens else None,
                    **({"sources": manifest.get("sources")} if variant.name in self.mixtures else {}),
                }
            )
            found = set().union(*(evalsets.data_hashes(data) for data in self.curated_data(variant.name)))
            for eval_set in (s for s in self.eval_sets if s.kind != "aggregate"):
                hits = sum(h in found for h in evalsets.load_hashes(eval_set))
                overlap.append(
                    {
                        "variant": variant.name,
                        "eval_set": eval_set.name,
                        "documents": hits,
                        "share": round(hits / eval_set.size, 4),
                    }
                )
            for seed in self.spec.seeds:
                run_dir = self.run_dir(variant.name, seed)
                evals = read_json(run_dir / EVALS_FILE) or {}
                run = recorded_run(run_dir) or {}
                runs.append(
                    {
                        "variant": variant.name,
                        "seed": seed,
                        "dir": str(run_dir),
                        "status": run.get("status"),
                        "steps": run.get("step"),
                        "tokens_trained": (run.get("step") or 0) * self.train_settings["batch_tokens"],
                        "points": evals.get("points", []),
                        "samples": evals.get("samples", []),
                    }
                )
        results = results_rows(runs, self.eval_sets)
        summary = summary_rows(results)
        return record_file.AblationRecord(
            variants=variants,
            eval_sets=[s.entry() for s in self.eval_sets],
            results=results,
            summary=summary,
            verdicts=verdicts(summary, len(self.spec.seeds)),
            plan=build_plan({"summary": summary, "runs": runs, "seeds": list(self.spec.seeds)}, LOWER_IS_BETTER),
            overlap=overlap,
            runs=runs,
            settings={**self.train_settings, "tokens": self.spec.tokens, "tokens_trained": tokens_trained},
            inputs=self.identity["inputs"],
            seeds=list(self.spec.seeds),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )


def _changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changed = [] if old.get("inputs") == new.get("inputs") else ["inputs"]
    old_train, new_train = old.get("train") or {}, new.get("train") or {}
    changed += [
        f"{k} ({old_train.get(k)} -> {new_train.get(k)})" for k in new_train if old_train.get(k) != new_train[k]
    ]
    return changed or ["settings"]


class TrainPrinter:
    """Prints a run's progress to the terminal: resumption, every tenth of the steps, and errors."""

    def __init__(self, label: str, steps: int, echo: Echo):
        self.label, self.steps, self.echo = label, steps, echo
        self.every = max(1, steps // 10)

    def __call__(self, line: str | None) -> None:
        """Handle one trainer output line (None: a second of silence)."""
        if line is None:
            return
        if "resuming from" in line or line.startswith(("error", "Traceback")):
            self.echo(f"  [{self.label}] {line}")
        elif line.startswith("step ") and "| loss" in line:
            with contextlib.suppress(ValueError):
                step = int(line.split("/")[0].split()[-1])
                if step % self.every == 0 or step == self.steps:
                    self.echo(f"  [{self.label}] {line}")


def _stage(stage: Any, what: str, echo: Echo) -> StageOutcome:
    outcome = run_stage(stage)
    if outcome.reused:
        echo(f"  {what}: finished earlier, reused")
    return outcome


def train_runs(ablation: Ablation, name: str, echo: Echo) -> None:
    """Train every seed of a variant through `TrainStage`, `training_concurrency` runs at once.

    Concurrent runs are supervised from worker threads; SIGTERM, SIGHUP, Ctrl-C or a failed run stop every trainer
    of the variant with a checkpoint (SIGTERM to its recorded process group) before the error is raised.

    Args:
        ablation: the planned and claimed ablation.
        name: the variant.
        echo: where progress lines go.
    """
    from trainer.process import stop_recorded_trainer
    from trainer.stage import TrainStage

    spec = ablation.spec

    def train(seed: int) -> None:
        label = f"{name} seed {seed}"
        printer = TrainPrinter(label, spec.steps, echo)
        stage = TrainStage(ablation.train_config(name, seed), on_output=printer, env=ablation.train_env())
        _stage(stage, f"train {label}", echo)

    workers = min(spec.training_concurrency, len(spec.seeds))
    if workers == 1:
        for seed in spec.seeds:
            train(seed)
        return
    with signals_raise(), ThreadPoolExecutor(workers, thread_name_prefix="train") as pool:
        futures = [pool.submit(train, seed) for seed in spec.seeds]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            for seed in spec.seeds:
                stop_recorded_trainer(ablation.run_dir(name, seed))
            raise


def run_ablation(spec: AblationSpec, echo: Echo = print) -> dict[str, Any]:
    """Run (or resume, or reuse) a whole ablation: what `fineforge ablate` does.

    Variants run in the order given, each to the end (curate, tokenize, its training runs, `training_concurrency`
    at a time, then scoring) before the next; datatrove's log goes to DIR/<variant>/curate.log, the trainer's to
    each run's train.log.

    Args:
        spec: the ablation's arguments.
        echo: where progress lines go.

    Returns:
        The ablation record, also written as DIR/ablation.json.

    Raises:
        AblationError, SpecError, EvalSetError, ValueError: bad arguments, inputs or folders (before any work
            where they can be known then); `trainer.stage.TrainerExit` when a training run fails.
        FolderInUse: another ablation runs in DIR (the message names its host and pid).
    """
    ablation = Ablation(spec)
    ablation.plan()
    with folder_lock(ablation.out):
        return _run_claimed(ablation, echo)


def _run_claimed(ablation: Ablation, echo: Echo) -> dict[str, Any]:
    spec = ablation.spec
    ablation.claim()
    eval_sets = ablation.prepare_eval_sets()
    echo(f"ablation in {ablation.out}: {len(spec.variants)} variants x {len(spec.seeds)} seeds, "
         f"{spec.tokens_trained:,} tokens per run ({spec.steps} steps of {spec.step_tokens}); "
         f"eval sets: {', '.join(f'{s.name} ({s.kind}, {s.size})' for s in eval_sets)}")  # fmt: skip
    for variant in spec.variants:
        name = variant.name
        for label, stage in ablation.data_stages(name):
            if stage.name == "curate":
                echo(f"variant {name}: {label} ({variant.config})")
                with datatrove_logs_to(_log_file(stage.output_folder().parent / "curate.log")):
                    summary = _stage(stage, label, echo).result
                echo(f"  {summary['docs_in']} documents in, {summary['docs_out']} kept")
                continue
            manifest = _stage(stage, label, echo).result
            echo(f"  {manifest['total_tokens']['train']:,} training tokens" + _shares(manifest))
        train_runs(ablation, name, echo)
        for seed in spec.seeds:
            record = ablation.evaluate_run(name, seed)
            final = record["points"][-1]["values"] if record["points"] else {}
            echo(f"  [{name} seed {seed}] " + ", ".join(f"{k} {v:.4f}" for k, v in final.items()))
    record = ablation.finish()
    for verdict in record["verdicts"]:
        echo(verdict["text"])
    echo(f"plan: {record['plan']['recommendation']}")
    echo(f"report: {ablation.out / REPORT_FILE}")
    return record


def _shares(manifest: dict[str, Any]) -> str:
    """`, mixed: web 70.0%, edu 30.0%` for a mixture's manifest; nothing for one source."""
    sources = manifest.get("sources") or []
    total = sum(s["train_tokens"] for s in sources)
    return (
        ", mixed: " + ", ".join(f"{s['name']} {100 * s['train_tokens'] / total:.1f}%" for s in sources)
        if total
        else ""
    )


def _log_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
