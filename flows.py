"""Prefect flows and deployments for FineForge: curate -> tokenize -> (event) -> train -> report.

Thin wrappers: each flow runs its stage through `pipelines.common.stage.run_stage` (the same plan, is-complete,
claim, steps, finish as the CLI and the demo; each step becomes a Prefect task) and publishes artifacts built by
`orchestration.artifacts`; default folders come from `orchestration.layout`. Parameters are pydantic models with
field descriptions, so the UI renders them as forms (and the server validates them).

Chaining: `curate` runs `tokenize` as a subflow when it finishes (`then_tokenize`), and `tokenize` emits
`fineforge.shards.ready` (resource `fineforge.shards.<dataset>`, payload `{"manifest", "train_tokens"}`). The
deployment `train-on-shards` carries a trigger on that event and takes `manifest` from the payload, so
training starts by itself. `pipeline` runs all four stages in one flow run and does not announce its shards,
so it never starts a second, event-triggered training.
`mix` (issue 22) mixes tokenized shard sets by weight (`pipelines.mix`) and announces its shards the same way,
so training on a mixture starts by itself too.

Where runs happen: `fineforge up` serves every deployment from one process on this machine (`serve_all`);
`fineforge deploy` registers the same deployments on Prefect process work pools (`orchestration.pools`) with
module entrypoints (`flows.curate`, ...), so that a `fineforge worker` on any machine runs them from its own
install. Progress: curate, tokenize and train publish `<stage>-progress-<dataset>` and `<stage>-counts-<dataset>`
artifacts while they run (`orchestration.progress`). Training holds a concurrency slot per run directory
(`orchestration.run_lock`), so two shards-ready events for one dataset never start two trainers in one folder.
Report links point at the report server (`orchestration.reports`) when `FINEFORGE_REPORTS_URL` names one.

Reruns skip finished stages through the stages' own `is_complete` (summary.json, manifest.json, run.json, which
record what they were made from); a changed input or setting therefore reruns the stage, and a half-written
stage resumes through the library's own completion markers.

`ablation` runs an ablation (`pipelines.ablate`): a subflow per variant (curate, tokenize) and per training run
(train, then scoring). Each run holds a slot of the global concurrency limit `fineforge-training` (set from
`spec.training_concurrency`, default 1) while it computes, and each trainer gets its share of the cores, so the
runs of one ablation, or of ablations started side by side, never oversubscribe the machine.

Library modules are imported inside the flows: `fineforge serve` then starts in about 2 s instead of paying
for datatrove and torch imports in the runner process, which never runs a stage itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.deployments.runner import EntrypointType
from prefect.events import emit_event
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from pydantic import BaseModel, Field, model_validator

from orchestration import artifacts as art
from orchestration import layout
from orchestration.forms import open_optional_fields
from orchestration.progress import ArtifactProgress
from orchestration.reports import report_link
from orchestration.run_lock import exclusive_run_dir
from pipelines.ablate.record import record_path
from pipelines.ablate.spec import AblationSpec
from pipelines.common.layout import DatasetLayout
from pipelines.common.metrics import read_metrics
from pipelines.common.processes import StopRequested
from pipelines.common.run_record import recorded_run
from pipelines.common.stage import StepRunner, run_stage
from pipelines.quality.config import ClassifierSettings, QualityConfig
from pipelines.shards import MANIFEST_NAME
from pipelines.tokenize.settings import TokenizeSettings

SHARDS_READY = "fineforge.shards.ready"
TRAINING_LIMIT = "fineforge-training"  # global concurrency limit held by every ablation training run
_TOKENIZE_FIELDS = TokenizeSettings.model_fields


class CurateParams(BaseModel):
    """What to curate and where to put it."""

    dataset: str = Field("demo", description="Dataset name; default folders are FINEFORGE_HOME/datasets/{dataset}/.")
    inputs: list[str] = Field(
        description="Raw inputs: WARC/WET/JSONL/Parquet files, folders of them, or fsspec URLs (hf://, s3://)."
    )
    output: str | None = Field(
        None, description="Curated output folder (default FINEFORGE_HOME/datasets/{dataset}/curated)."
    )
    config: str | None = Field(None, description="Curate config YAML (FineWeb defaults when empty).")
    quality: QualityConfig | None = Field(
        None, description="Quality classifier stage; replaces the config file's `quality` section when given."
    )
    workers: int = Field(1, ge=1, description="Parallel tasks per stage.")
    executor: Literal["local", "ray", "slurm"] = Field("local", description="datatrove executor.")
    ray_address: str | None = Field(
        None, description="Address of an existing Ray cluster, HOST:PORT (executor ray; empty: RAY_ADDRESS or local)."
    )
    limit: int | None = Field(None, ge=1, description="Read at most this many documents (for a quick look).")
    extract_engine: Literal["trafilatura", "resiliparse"] | None = Field(
        None, description="HTML extraction: trafilatura (FineWeb's) or resiliparse (~17x faster); empty: the config's."
    )
    pii: bool | None = Field(
        None,
        title="PII",
        description="Replace emails and public IP addresses (FineWeb's last step); empty: the config's (on).",
    )
    decontaminate_index: str | None = Field(
        None, description="Index from `fineforge decontam index`: drop or flag documents sharing its eval n-grams."
    )
    decontaminate_action: Literal["drop", "flag"] = Field(
        "drop", description="With an index: drop contaminated documents, or keep them flagged in metadata."
    )
    dedup_against: list[str] = Field(
        default_factory=list,
        description="Earlier curate output folders: drop documents they kept (exact or MinHash); empty: the config's.",
    )

    @model_validator(mode="after")
    def _ray_address_needs_ray(self) -> CurateParams:
        """A Ray address only makes sense with the Ray executor."""
        if self.ray_address and self.executor != "ray":
            raise ValueError(f"ray_address is set but the executor is {self.executor!r}; choose executor ray")
        return self

    def output_dir(self) -> Path:
        """The curated output folder, absolute."""
        return Path(self.output).resolve() if self.output else DatasetLayout.home(self.dataset).curated

    def config_overrides(self) -> dict[str, Any]:
        """The settings this form changes over the config file (nested like the YAML)."""
        overrides: dict[str, Any] = {}
        if self.extract_engine:
            overrides["extract"] = {"engine": self.extract_engine}
        if self.pii is not None:
            overrides["pii"] = {"enabled": self.pii}
        if self.decontaminate_index:
            index = str(Path(self.decontaminate_index).resolve())
            overrides["decontaminate"] = {"enabled": True, "index": index, "action": self.decontaminate_action}
        if self.quality is not None:
            overrides["quality"] = self.quality.model_dump(mode="json")  # the whole section, as the form shows it
        if self.ray_address:
            overrides["run"] = {"ray": {"address": self.ray_address.strip()}}
        if self.dedup_against:
            overrides["dedup_against"] = [str(Path(p).expanduser().resolve()) for p in self.dedup_against]
        return overrides

    def curate_config(self) -> Any:
        """The curate config: the YAML file (or the defaults) with the settings of this form over it."""
        from pipelines.curate import load_config, with_overrides

        return with_overrides(load_config(Path(self.config) if self.config else None), self.config_overrides())


class QualityTrainParams(BaseModel):
    """Which texts to train a quality classifier on, and where to write it."""

    out: str = Field(description="Model file to write (MODEL.bin); its card MODEL.json goes beside it.")
    data: list[str] = Field(default_factory=list, description="Labelled JSONL/Parquet files or folders.")
    text_field: str = Field("text", description="Field or column holding the text.")
    label_field: str = Field("label", description="Field or column holding the label (class name or integer).")
    positive: list[str] = Field(default_factory=list, description="Collections of good text (instead of data).")
    negative: list[str] = Field(default_factory=list, description="Collections of text to filter out.")
    positive_label: str | None = Field(None, description="The good class (default: highest integer, or positive).")
    settings: ClassifierSettings = Field(default_factory=ClassifierSettings, description="Split and fastText.")


class TokenizeOptions(BaseModel):
    """How to cut token shards: the fields of `TokenizeSettings` as declared there (default, range, description),
    without `text_column` (curated folders hold `text`), plus the tokenizer processes."""

    shard_tokens: int = _TOKENIZE_FIELDS["shard_tokens"]
    val_tokens: int | None = _TOKENIZE_FIELDS["val_tokens"]
    seed: int | None = _TOKENIZE_FIELDS["seed"]
    workers: int = Field(1, ge=1, description="Tokenizer processes.")

    def settings(self) -> TokenizeSettings:
        """The stage settings these options stand for."""
        return TokenizeSettings(**self.model_dump(include=set(TokenizeSettings.model_fields)))


class TokenizeParams(TokenizeOptions):
    """What to tokenize and where to put the shards."""

    dataset: str = Field("demo", description="Dataset name; names the shards event `fineforge.shards.{dataset}`.")
    inputs: list[str] = Field(description="A curated folder (with data/ and summary.json) or Parquet/JSONL files.")
    output: str | None = Field(None, description="Shard folder (default FINEFORGE_HOME/datasets/{dataset}/shards).")

    def output_dir(self) -> Path:
        """The shard folder, absolute."""
        return Path(self.output).resolve() if self.output else DatasetLayout.home(self.dataset).shards


class TrainSettings(BaseModel):
    """How to train; any other `fineforge train` flag goes in `extra_args`."""

    model: str = Field("tiny", description="Model preset (tiny, small-cpu, gpt2, d12, ...).")
    steps: int | None = Field(None, ge=1, description="Optimizer steps (default: the preset's).")
    nproc: int = Field(
        1, ge=1, title="Processes", description="Training processes on this machine (torchrun when > 1)."
    )
    config: str | None = Field(None, description="Train config YAML.")
    extra_args: list[str] = Field(default_factory=list, description="More trainer flags, e.g. ['--lr', '3e-4'].")

    def args(self) -> list[str]:
        """The trainer flags these settings stand for (without --data/--out)."""
        flags = ["--model", self.model]
        if self.steps:
            flags += ["--steps", str(self.steps)]
        if self.config:
            flags += ["--config", self.config]
        if self.nproc > 1:
            flags += ["--nproc", str(self.nproc)]
        return flags + list(self.extra_args)


@task(name="stage-step", cache_policy=NO_CACHE)  # a step is a bound method holding locks: Prefect cannot hash it
def _stage_step(name: str, step: Any) -> str:
    step()
    return name


def _steps_as_tasks(stage: str) -> StepRunner:
    """Run each step of a stage as its own Prefect task, named `<stage>-<step>`.

    Args:
        stage: the stage name.
    """

    def run_step(name: str, step: Any) -> None:
        _stage_step.with_options(name=f"{stage}-{name}")(name, step)

    return run_step


@flow(name="curate")
def curate(params: CurateParams, then_tokenize: bool = True, tokenize_options: TokenizeOptions | None = None) -> dict:
    """Curate raw crawl with the FineWeb recipe (one task per stage), publish the funnel, then tokenize.

    Args:
        params: inputs, output folder and curate settings.
        then_tokenize: run the `tokenize` flow on the result (which announces the shards).
        tokenize_options: shard settings for that tokenize run.

    Returns:
        curate's summary.json contents.
    """
    from pipelines.curate import CurateStage
    from pipelines.curate.pii import privacy_warning

    logger = get_run_logger()
    out = params.output_dir()
    cfg = params.curate_config()
    if warning := privacy_warning(cfg.pii):
        logger.warning(warning)
    progress = ArtifactProgress("curate", params.dataset)
    stage = CurateStage(
        cfg,
        params.inputs,
        out,
        workers=params.workers,
        executor=params.executor,
        limit=params.limit,
        on_progress=progress,
        log_to_file=True,  # datatrove's hundreds of lines a run go to OUT/curate.log, not the serving terminal
    )
    outcome = run_stage(stage, _steps_as_tasks("curate"))
    summary = outcome.result
    if outcome.reused:
        logger.info("curate already finished in %s (run %s): skipped", out, summary["run_id"])
    else:
        progress.done(f"done: {summary['docs_in']:,} documents in, {summary['docs_out']:,} kept")
    _publish_curate(params.dataset, out, summary)
    if then_tokenize:
        tokenize(
            TokenizeParams(
                dataset=params.dataset, inputs=[str(out)], **(tokenize_options or TokenizeOptions()).model_dump()
            )
        )
    return summary


def _publish_curate(dataset: str, out: Path, summary: dict) -> None:
    create_table_artifact(
        art.funnel_rows(summary),
        key=art.artifact_key("curate-funnel", dataset),
        description=f"Documents per stage, {summary['docs_in']} in, {summary['docs_out']} kept",
    )
    create_table_artifact(
        art.drop_rows(summary),
        key=art.artifact_key("curate-drops", dataset),
        description="Dropped documents by stage and reason",
    )
    html = _build_report(out)
    if html is not None:
        create_link_artifact(
            report_link(html),
            link_text=f"Data-quality report: {dataset}",
            key=art.artifact_key("curate-report", dataset),
            description="The HTML data-quality report of this curate run",
        )


def _build_report(run_dir: Path) -> Path | None:
    from pipelines.report import build_report

    try:
        return build_report(run_dir)
    except Exception as exc:  # a report failure must not fail the data it reports on
        get_run_logger().warning("report for %s failed: %s", run_dir, exc)
        return None


@flow(name="quality-train")
def quality_train(params: QualityTrainParams) -> dict:
    """Train a quality classifier (fastText) and publish its held-out metrics next to the heuristic baseline.

    Args:
        params: training texts, model path and settings.

    Returns:
        The model's card (MODEL.json).
    """
    from pipelines.quality.train import train_from_inputs

    out = Path(params.out).expanduser().resolve()
    card = train_from_inputs(
        out,
        params.settings,
        params.data,
        params.positive,
        params.negative,
        params.text_field,
        params.label_field,
        params.positive_label,
    )
    create_table_artifact(
        art.quality_model_rows(card),
        key=art.artifact_key("quality-model", out.stem),
        description=f"Held-out metrics of {out} ({card['n_test']} test texts)",
    )
    return card


@flow(name="tokenize", log_prints=True)
def tokenize(params: TokenizeParams, announce: bool = True) -> dict:
    """Tokenize curated text into llm.c shards, publish the shard table, then emit `fineforge.shards.ready`.

    Args:
        params: inputs, shard folder and shard settings.
        announce: emit the shards event (which starts `train-on-shards`).

    Returns:
        The manifest.
    """
    from pipelines.tokenize import TokenizeStage

    logger = get_run_logger()
    out = params.output_dir()
    progress = ArtifactProgress("tokenize", params.dataset)
    # overwrite: a flow run into a dataset's shard folder replaces the shards of its earlier inputs
    settings = params.settings()
    stage = TokenizeStage(params.inputs, out, settings, workers=params.workers, overwrite=True, on_progress=progress)
    outcome = run_stage(stage, _steps_as_tasks("tokenize"))
    manifest = outcome.result
    if outcome.reused:
        logger.info("shards in %s are up to date: skipped", out)
    else:
        progress.done(f"done: {len(manifest['shards'])} shards, {manifest['total_tokens']['train']:,} train tokens")
    create_table_artifact(
        art.shard_rows(manifest),
        key=art.artifact_key("tokenize-shards", params.dataset),
        description=f"Shards: {manifest['total_tokens']['train']} train and "
        f"{manifest['total_tokens']['val']} val tokens",
    )
    if announce:
        _announce_shards(params.dataset, out, manifest)
    return manifest


def _announce_shards(dataset: str, out: Path, manifest: dict) -> None:
    """Emit `fineforge.shards.ready` for a finished shard set (tokenize's or mix's): it starts `train-on-shards`."""
    emit_event(
        event=SHARDS_READY,
        resource={"prefect.resource.id": f"fineforge.shards.{dataset}", "prefect.resource.name": dataset},
        payload={"manifest": str(out / MANIFEST_NAME), "train_tokens": manifest["total_tokens"]["train"]},
    )
    get_run_logger().info("emitted %s for %s", SHARDS_READY, out / MANIFEST_NAME)


# --- mix (issue 22) ---


class MixParams(BaseModel):
    """Which tokenized shard sets to mix, by weight, and where the mixture goes (`fineforge mix`)."""

    dataset: str = Field("mix", description="Dataset name; names the shards event `fineforge.shards.{dataset}`.")
    sources: list[str] = Field(
        min_length=1, description="One NAME=SHARDS:WEIGHT per source: a tokenize shard folder and its share."
    )
    tokens: int = Field(ge=1, description="Train tokens of the mixture.")
    output: str | None = Field(None, description="Mixture folder (default FINEFORGE_HOME/datasets/{dataset}/shards).")
    seed: int = Field(0, ge=0, description="Seed of the documents picked and their order.")
    max_epochs: int = Field(4, ge=1, description="Most passes over any source's train tokens (upsampling limit).")
    shard_tokens: int = Field(100_000_000, ge=1025, description="Tokens per train shard.")
    workers: int = Field(1, ge=1, description="Processes writing shards (the output is the same for any count).")

    def output_dir(self) -> Path:
        """The mixture folder, absolute."""
        return Path(self.output).resolve() if self.output else DatasetLayout.home(self.dataset).shards


@flow(name="mix", log_prints=True)
def mix(params: MixParams, announce: bool = True) -> dict:
    """Mix tokenized shard sets by weight into one shard set, publish its shard table, then announce it.

    Args:
        params: sources, tokens, folder and settings.
        announce: emit `fineforge.shards.ready` (which starts `train-on-shards`, as after tokenize).

    Returns:
        The mixture's manifest.
    """
    from pipelines.mix import MixStage, parse_source

    out = params.output_dir()
    settings = params.model_dump(include={"seed", "max_epochs", "shard_tokens", "workers"})
    stage = MixStage([parse_source(s) for s in params.sources], out, params.tokens, **settings)
    manifest = run_stage(stage, _steps_as_tasks("mix")).result
    shares = ", ".join(f"{s['name']} {s['train_tokens']:,} ({s['epochs']:g} epochs)" for s in manifest["sources"])
    create_table_artifact(
        art.shard_rows(manifest),
        key=art.artifact_key("mix-shards", params.dataset),
        description=f"Mixture: {manifest['total_tokens']['train']} train tokens: {shares}",
    )
    if announce:
        _announce_shards(params.dataset, out, manifest)
    return manifest


# --- end mix ---


def _stop_trainer_hook(flow: Any, flow_run: Any, state: Any) -> None:
    """on_cancellation: stop a trainer group the flow process left behind (runs in the runner process)."""
    from trainer.process import stop_recorded_trainer

    params = flow_run.parameters or {}
    stop_recorded_trainer(layout.train_run_dir(params.get("manifest", ""), params.get("run_dir")))


def _log_line(line: str | None) -> None:
    """on_output of training in a flow: every trainer line goes to the flow run's log."""
    if line is not None:
        get_run_logger().info(line)


@flow(name="train", on_cancellation=[_stop_trainer_hook], on_crashed=[_stop_trainer_hook])
def train(
    manifest: str, run_dir: str | None = None, settings: TrainSettings | None = None, wait_s: float | None = None
) -> dict:
    """Train GPT-2 on a shard set in a trainer subprocess, streaming its log and publishing progress.

    Cancelling the run sends SIGTERM to the trainer's process group: the trainer checkpoints and exits, and
    the next run into the same run directory resumes from that checkpoint. While another flow run trains into
    the same run directory (on any worker), this one logs that it waits and starts when that one has finished.

    Args:
        manifest: manifest.json of the shards (or its folder).
        run_dir: run directory (default FINEFORGE_HOME/runs/{dataset}, the dataset being the shard folder's parent).
        settings: model and training settings.
        wait_s: most seconds to wait for a run directory that another run is training into (None: no limit).

    Returns:
        The final run.json contents.
    """
    from trainer.launch import config_from_args
    from trainer.stage import TrainStage

    settings = settings or TrainSettings()
    rd = layout.train_run_dir(manifest, run_dir)
    progress = ArtifactProgress("train", rd.name)
    config, nproc = config_from_args(["--data", manifest, "--out", str(rd), *settings.args()])
    stage = TrainStage(config, nproc, _log_line, on_progress=progress)
    with exclusive_run_dir(rd, wait_s, get_run_logger()):
        outcome = run_stage(stage, _steps_as_tasks("train"))
    if outcome.reused:
        get_run_logger().info("run %s already completed: skipped", rd)
    else:
        progress.done(f"done: {outcome.result.get('step')} steps, val loss {outcome.result.get('val_loss')}")
    _publish_train(rd.name, rd)
    return outcome.result


def _publish_train(name: str, rd: Path) -> None:
    records = read_metrics(rd / "metrics.jsonl")
    run = recorded_run(rd)
    create_table_artifact(
        art.final_metrics_rows(records, run),
        key=art.artifact_key("train-metrics", name),
        description=f"Final metrics of {rd}",
    )
    create_markdown_artifact(
        art.loss_curve_markdown(records), key=art.artifact_key("train-loss", name), description=f"Loss curve of {rd}"
    )


@flow(name="report")
def report(run_dir: str, html: str | None = None, compare: str | None = None) -> str:
    """Build the HTML report of a curate folder and publish its key tables as artifacts.

    The tables go under `report-<table>-<dataset>` (the dataset: the parent's name of a `curated` folder),
    the HTML link under `report-<dataset>`; the shards next to the folder and their training run (next to them,
    or under FINEFORGE_HOME/runs/) are included.

    Args:
        run_dir: the curate folder to report on.
        html: where to write the HTML (default: inside run_dir).
        compare: a second folder to compare with.

    Returns:
        The HTML path.
    """
    from pipelines.report import tables_of, write_report

    shards, train = layout.report_inputs(Path(run_dir))
    path, data = write_report(
        Path(run_dir), Path(html) if html else None, Path(compare) if compare else None, shards, train
    )
    name = layout.dataset_name(Path(run_dir).resolve(), "curated")
    for key, rows in tables_of(data).items():
        create_table_artifact(
            art.rounded_rows(rows),
            key=art.artifact_key(f"report-{key}", name),
            description=f"Data-quality report of {name}: {key.replace('_', ' ')}",
        )
    create_link_artifact(
        report_link(path),
        link_text=f"Data-quality report: {name}",
        key=art.artifact_key("report", name),
        description=f"The HTML data-quality report of {name} ({path})",
    )
    return str(path)


@flow(name="pipeline", log_prints=True)
def pipeline(
    curate_params: CurateParams,
    tokenize_options: TokenizeOptions | None = None,
    train_settings: TrainSettings | None = None,
    run_dir: str | None = None,
) -> dict:
    """End to end: curate, tokenize, train, report; a rerun with the same parameters skips finished stages.

    Args:
        curate_params: inputs and curate settings (the dataset name picks the default folders).
        tokenize_options: shard settings.
        train_settings: model and training settings.
        run_dir: run directory (default FINEFORGE_HOME/runs/{dataset}).

    Returns:
        Paths of the stage outputs.
    """
    curate(curate_params, then_tokenize=False)
    options = (tokenize_options or TokenizeOptions()).model_dump()
    shards = TokenizeParams(dataset=curate_params.dataset, inputs=[str(curate_params.output_dir())], **options)
    tokenize(shards, announce=False)
    manifest = str(shards.output_dir() / MANIFEST_NAME)
    train(manifest, run_dir, train_settings)
    return {
        "curated": str(curate_params.output_dir()),
        "manifest": manifest,
        "run_dir": str(layout.train_run_dir(manifest, run_dir)),
        "report": report(str(curate_params.output_dir())),
    }


def _ablation(spec: AblationSpec) -> Any:
    """The planned, claimed ablation of a spec with its evaluation sets ready (cheap to repeat in each subflow)."""
    from pipelines.ablate.job import Ablation

    ablation_ = Ablation(spec)
    ablation_.plan()
    ablation_.claim()
    ablation_.prepare_eval_sets()
    return ablation_


@flow(name="ablation-variant", flow_run_name="{variant}")
def ablation_variant(spec: AblationSpec, variant: str) -> dict:
    """Curate and tokenize one variant of an ablation, or make a mixture variant's shards (one task per stage step).

    Returns:
        The variant's shard manifest.
    """
    ablation_ = _ablation(spec)
    manifest: dict = {}
    for _, stage in ablation_.data_stages(variant):  # curate, tokenize; a mixture variant's sources, then mix
        manifest = run_stage(stage, _steps_as_tasks(stage.name)).result
    return manifest


@flow(name="ablation-run", flow_run_name="{variant}-seed-{seed}")
def ablation_run(spec: AblationSpec, variant: str, seed: int) -> dict:
    """Train one run of an ablation and score it, holding a `fineforge-training` slot while it computes.

    Progress is the artifact `ablation-progress-<ablation>-<variant>-seed-<seed>`.

    Returns:
        The run's evals.json (scores at each checkpoint, samples).
    """
    from prefect.concurrency.sync import concurrency

    from trainer.stage import TrainStage

    ablation_ = _ablation(spec)
    progress = ArtifactProgress("ablation", f"{ablation_.out.name}-{variant}-seed-{seed}")
    stage = TrainStage(
        ablation_.train_config(variant, seed), on_output=_log_line, env=ablation_.train_env(), on_progress=progress
    )
    with concurrency(TRAINING_LIMIT, occupy=1):
        if run_stage(stage, _steps_as_tasks("train")).reused:
            get_run_logger().info("run %s already completed: skipped", stage.run_dir)
        progress.done()
        return ablation_.evaluate_run(variant, seed)


@task(name="ablation-train")
def _ablation_run_task(spec: AblationSpec, variant: str, seed: int) -> dict:
    """Run one `ablation-run` subflow from a task, so that the runs of a variant can go side by side."""
    return ablation_run(spec, variant, seed)


def _set_training_limit(slots: int) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(TRAINING_LIMIT, slots)


def _stop_ablation_trainers_hook(flow: Any, flow_run: Any, state: Any) -> None:
    """on_cancellation/on_crashed of `ablation`: stop any trainer its runs left behind (runs in the runner)."""
    from trainer.process import stop_recorded_trainer

    out = ((flow_run.parameters or {}).get("spec") or {}).get("out")
    if out:
        for run_dir in Path(out).expanduser().resolve().glob("*/runs/seed-*"):
            stop_recorded_trainer(run_dir)


@flow(
    name="ablation",
    log_prints=True,
    on_cancellation=[_stop_ablation_trainers_hook],
    on_crashed=[_stop_ablation_trainers_hook],
)
def ablation(spec: AblationSpec) -> dict:
    """Does a curation choice make a better model? Curate, tokenize and train every variant alike, then compare.

    Each variant is curated and tokenized, then its runs are submitted at once and train as slots of the
    `fineforge-training` limit (set to `spec.training_concurrency`) come free. Rerunning with the same parameters
    reuses finished variants and runs and resumes an unfinished one.

    Args:
        spec: inputs, variants (name and curate config), evaluation sets, output folder and training recipe.

    Returns:
        The verdicts and the paths of ablation.json and the report.
    """
    from pipelines.common.locks import folder_lock

    with folder_lock(Path(spec.out).expanduser().resolve()):  # one ablation per DIR
        ablation_ = _ablation(spec)
        _set_training_limit(spec.training_concurrency)
        for variant in spec.variants:
            ablation_variant(spec, variant.name)
            runs = [_ablation_run_task.submit(spec, variant.name, seed) for seed in spec.seeds]
            for run in runs:
                run.result()
        record = ablation_.finish()
        name = ablation_.out.name
        create_table_artifact(
            art.ablation_rows(record),
            key=art.artifact_key("ablation-results", name),
            description="; ".join(v["text"] for v in record["verdicts"]) or "one variant",
        )
        report_path = ablation_.out / "report.html"
        create_link_artifact(
            report_path.as_uri(),
            link_text=f"Ablation report: {name}",
            key=art.artifact_key("ablation-report", name),
            description="The comparison report of this ablation",
        )
        for verdict in record["verdicts"]:
            print(verdict["text"])
        return {
            "verdicts": record["verdicts"],
            "ablation": str(record_path(ablation_.out)),
            "report": str(report_path),
        }


def deployments(
    train_settings: TrainSettings | None = None, entrypoint_type: EntrypointType = EntrypointType.FILE_PATH
) -> list[Any]:
    """Every FineForge deployment, ready for `prefect.serve` or (with module entrypoints) for work pools.

    Args:
        train_settings: default training settings of `train` and `train-on-shards` (what the event run uses).
        entrypoint_type: FILE_PATH to serve from this checkout; MODULE_PATH (`flows.curate`, ...) for work pools,
            whose workers import the flows from their own install.

    Returns:
        Runner deployments: curate, tokenize, mix, train, train-on-shards, report, pipeline, quality-train, ablation;
        their run forms open optional fields on their input (`orchestration.forms`).
    """
    settings = (train_settings or TrainSettings()).model_dump(exclude_none=True)  # a None opens a form field empty
    trigger = DeploymentEventTrigger(
        name="train when shards are ready",
        expect={SHARDS_READY},
        match={"prefect.resource.id": "fineforge.shards.*"},
        parameters={"manifest": "{{ event.payload.manifest }}"},
    )
    kind = {"entrypoint_type": entrypoint_type}
    made = [
        curate.to_deployment(
            name="curate", description="Curate raw crawl, then tokenize it (announces the shards).", **kind
        ),
        tokenize.to_deployment(name="tokenize", description="Tokenize a curated folder into llm.c shards.", **kind),
        mix.to_deployment(
            name="mix", description="Mix tokenized shard sets by weight (announces the shards).", **kind
        ),
        train.to_deployment(
            name="train", parameters={"settings": settings}, description="Train GPT-2 on shards.", **kind
        ),
        train.to_deployment(
            name="train-on-shards",
            parameters={"settings": settings},
            triggers=[trigger],
            description=f"Started by {SHARDS_READY}: trains on the announced manifest.",
            **kind,
        ),
        report.to_deployment(name="report", description="HTML report and artifact tables of a curate folder.", **kind),
        pipeline.to_deployment(name="pipeline", description="Curate, tokenize, train and report in one run.", **kind),
        quality_train.to_deployment(
            name="quality-train",
            description="Train a fastText quality classifier for curate's quality stage.",
            **kind,
        ),
        ablation.to_deployment(
            name="ablation",
            description="Train the same small model on each curate recipe and compare the models.",
            **kind,
        ),
    ]
    return [open_optional_fields(deployment) for deployment in made]


def serve_all(api_url: str, train_settings: TrainSettings | None = None, limit: int | None = None) -> None:
    """Serve every deployment against the server at `api_url` until interrupted (Ctrl-C or SIGTERM).

    Flow runs start as subprocesses, which inherit the API address with the rest of the current settings.

    Args:
        api_url: the Prefect API address, e.g. `http://127.0.0.1:4200/api`.
        train_settings: default settings of `train` and `train-on-shards`.
        limit: most flow runs at once (None: no limit).
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from orchestration.runner import serve_until_signalled

    with temporary_settings({PREFECT_API_URL: api_url}):
        signum = serve_until_signalled(deployments(train_settings), limit=limit)
    if signum is not None:
        raise StopRequested(signum)
