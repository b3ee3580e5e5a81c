"""The `fineforge` command line: parses arguments, builds configs and delegates to the library.

Library modules are imported inside the commands: `import cli` stays free of torch (5 s of a busy 2-core
machine), which every command paid before, and so does every worker process of a multi-worker curate run
(datatrove's forkserver imports the calling `__main__`, this module, once per pool).

Errors that are the user's to fix (`pipelines.common.errors.USER_ERRORS`: bad inputs, settings and folders) are
caught once, by the root command group, for every command: one line `error: FILE: problem` and exit code 2; a
server that did not come up (`ServiceNotReady`) is one `error:` line too, with exit code 1.
`fineforge --debug COMMAND` (or `FINEFORGE_DEBUG=1`) shows the traceback instead. Commands only parse and call.
"""

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import click
import typer
from typer.core import TyperGroup

from pipelines.common.errors import USER_ERRORS, ServiceNotReady, describe
from pipelines.quality.config import ClassifierSettings
from trainer.launch import make_train_command


class _Commands(TyperGroup):
    """The root command group: the one place where a user's error becomes `error: ...` and exit code 2 (1 for a
    server that did not come up)."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the chosen command; print the user's errors in one line (their traceback with --debug)."""
        try:
            return super().invoke(ctx)
        except USER_ERRORS as e:
            _fail(ctx, e, 2)
        except ServiceNotReady as e:
            _fail(ctx, e, 1)


def _fail(ctx: click.Context, error: Exception, code: int) -> NoReturn:
    """Print `error: ...` and exit with `code`; with --debug re-raise `error` for its traceback instead."""
    if ctx.params.get("debug"):
        raise error
    typer.echo(f"error: {describe(error)}", err=True)
    raise typer.Exit(code) from None


app = typer.Typer(help="FineForge: raw web crawl to a trained GPT-2.", no_args_is_help=True, cls=_Commands)


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", envvar="FINEFORGE_DEBUG", help="show the traceback of an error instead of one line"
    ),
) -> None:
    """FineForge: raw web crawl to a trained GPT-2."""


def _train_with_progress(flags: dict, config: Path | None, nproc: int | None) -> int:
    from orchestration.progress import TerminalProgress
    from trainer.stage import run_train_command

    with TerminalProgress() as progress:
        return run_train_command(flags, config, nproc, on_progress=progress)


app.command("train")(make_train_command(_train_with_progress))  # the same flags as `python -m trainer`
eval_app = typer.Typer(help="Evaluate trained models.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("hellaswag")
def eval_hellaswag(
    checkpoint: Path = typer.Option(..., help="training checkpoint (.pt) or Hugging Face model folder"),
    data: Path | None = typer.Option(None, help="HellaSwag JSONL (default: the official val file, downloaded)"),
    limit: int | None = typer.Option(None, help="score only the first N items"),
) -> None:
    """HellaSwag accuracy by completion scoring: the suite's hellaswag task (`fineforge eval suite`) alone."""
    import json

    from trainer.evals.suite import run_suite

    result = run_suite(checkpoint, ["hellaswag"], limit=limit, files={"hellaswag": data} if data else None)
    task = result["tasks"]["hellaswag"]
    summary = {"items": task["n"], "acc": task["acc"], "acc_norm": task["acc_norm"], "data": task["data"]}
    typer.echo(json.dumps({**summary, "checkpoint": str(checkpoint)}))


@eval_app.command("suite")
def eval_suite(
    checkpoint: Path = typer.Option(..., help="run folder, training checkpoint (.pt) or Hugging Face GPT-2 folder"),
    tasks: str = typer.Option(..., help="TASK[,TASK...] or early-signal (all nine)"),
    data_dir: Path | None = typer.Option(
        None, help="folder of <task>.jsonl|.parquet (default: FINEFORGE_HOME/evals/, downloaded once)"
    ),
    limit: int | None = typer.Option(None, min=1, help="score only the first N items of each task"),
    out: Path | None = typer.Option(None, help="also write the result as JSON to this new file"),
) -> None:
    """The early-signal suite (HellaSwag, ARC, PIQA, SIQA, WinoGrande, OpenBookQA, CommonsenseQA, MMLU) as cloze
    tasks: acc, acc_norm and chance per task and the centred aggregate, as a table (and JSON with --out)."""
    from pipelines.common.files import read_json, write_json_atomic
    from trainer.evals.suite import format_table, run_suite
    from trainer.evals.tasks import parse_tasks

    names = parse_tasks(tasks)
    recorded = read_json(out) if out is not None and out.exists() else {}
    if (
        out is not None
        and out.exists()
        and not (isinstance(recorded, dict) and {"tasks", "centered"} <= recorded.keys())
    ):
        raise FileExistsError(f"{out}: exists and is not a suite result; FineForge does not overwrite it")
    result = run_suite(checkpoint, names, data_dir, limit)
    typer.echo(format_table(result))
    if out is not None:
        write_json_atomic(out, result)
        typer.echo(f"wrote {out}")


@eval_app.command("text")
def eval_text(
    checkpoint: Path = typer.Option(..., help="training checkpoint (.pt), Hugging Face model folder or run folder"),
    data: Path = typer.Option(..., help="JSONL (plain or compressed) or Parquet file with a 'text' field"),
    seq_len: int | None = typer.Option(
        None, min=1, help="window length (default: the model's training seq_len where recorded, else its context)"
    ),
) -> None:
    """Loss and bits per byte of a model on a text set (comparable across tokenizers)."""
    import json

    from pipelines.ablate.evalsets import evaluate_text

    typer.echo(json.dumps(evaluate_text(checkpoint, data, seq_len)))


@app.command("ablate")
def ablate_command(
    inputs: list[str] = typer.Option(..., "--input", "-i", help="raw input every variant curates (repeatable)"),
    variants: list[str] = typer.Option(..., "--variant", help="NAME=CONFIG.yaml, a curate recipe (repeatable)"),
    eval_data: list[str] = typer.Option(
        [], "--eval-data", help="evaluation set: text JSONL/Parquet or HellaSwag JSONL (repeatable)"
    ),
    eval_suite: str | None = typer.Option(
        None, help="early-signal suite tasks scored on every checkpoint: TASK[,TASK...] or early-signal"
    ),
    eval_suite_dir: str | None = typer.Option(
        None, help="folder of <task>.jsonl|.parquet for --eval-suite (default: FINEFORGE_HOME/evals/, downloaded)"
    ),
    scale: str | None = typer.Option(
        None, help="proxy scale: d12-124m (2.5B tokens) or d24-350m (7B); sets model, tokens, recipe (README)"
    ),
    out: Path = typer.Option(..., "--out", "-o", help="output folder; rerun the same command to resume"),
    model: str | None = typer.Option(None, help="model preset trained for every run (default: tiny)"),
    tokens: int | None = typer.Option(None, min=1, help="training tokens per run, equal for all (default: 200,000)"),
    seq_len: int | None = typer.Option(None, min=8, help="sequence length (default: the preset's)"),
    batch_tokens: int | None = typer.Option(None, min=8, help="tokens per optimizer step (default: the preset's)"),
    seeds: str = typer.Option("0,1", help="comma-separated training seeds; one run per seed and variant"),
    workers: int = typer.Option(1, min=1, help="parallel curate tasks and tokenizer processes"),
    lr: float | None = typer.Option(None, help="peak learning rate (default: the preset's)"),
    eval_points: int | None = typer.Option(
        None, min=1, help="checkpoints per run scored on the eval sets, also the resume points (default: 4)"
    ),
    training_concurrency: int = typer.Option(
        1, min=1, help="training runs at once, each with its share of the cores (2 on 2 cores: seeds side by side)"
    ),
) -> None:
    """Which curate recipe makes the better model? Curate, tokenize and train each variant alike, then compare.

    Writes OUT/<variant>/{curated,shards,runs/seed-<s>}/, OUT/ablation.json and OUT/report.html.
    """
    from pipelines.ablate.job import run_ablation
    from pipelines.ablate.spec import AblationSpec, SpecError, first_error, parse_seeds, parse_variant
    from pipelines.common.processes import StopRequested
    from trainer.stage import TrainerExit

    optional = {
        "model": model,
        "tokens": tokens,
        "seq_len": seq_len,
        "batch_tokens": batch_tokens,
        "lr": lr,
        "eval_points": eval_points,
        "eval_suite": eval_suite,
        "eval_suite_dir": eval_suite_dir,
        "scale": scale,
    }
    arguments = dict(
        inputs=inputs,
        variants=[parse_variant(v) for v in variants],
        eval_data=eval_data,
        out=str(out),
        seeds=parse_seeds(seeds),
        workers=workers,
        training_concurrency=training_concurrency,
        **{key: value for key, value in optional.items() if value is not None},
    )
    try:
        spec = AblationSpec(**arguments)
    except ValueError as e:  # pydantic's ValidationError lists every detail over several lines
        raise SpecError(first_error(e)) from None
    try:
        run_ablation(spec, typer.echo)
    except TrainerExit as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    except (StopRequested, KeyboardInterrupt) as e:
        _exit_resumable(e)


def _exit_resumable(stop: BaseException) -> NoReturn:
    """Say that a resumable run stopped on a signal (Ctrl-C: SIGINT) and how to resume it; exit 128 + signal."""
    signum = getattr(stop, "signum", int(signal.SIGINT))
    typer.echo(f"stopped by signal {signum}; rerun the same command to resume", err=True)
    raise typer.Exit(128 + signum) from None


@app.command("sample")
def sample(
    checkpoint: Path = typer.Option(..., help="training checkpoint (.pt), Hugging Face model folder or run folder"),
    prompt: str = typer.Option("", help="text to continue (empty: start a new document)"),
    num_samples: int = typer.Option(5, min=1),
    max_new_tokens: int = typer.Option(100, min=1),
    temperature: float = typer.Option(1.0, min=0.0, help="0: greedy"),
    top_k: int | None = typer.Option(50, min=1, help="sample among the k most likely tokens"),
    top_p: float = typer.Option(1.0, min=0.0, max=1.0, help="nucleus mass (1.0: off)"),
    seed: int = typer.Option(0),
    device: str = typer.Option("cpu", help="torch device, e.g. cuda"),
) -> None:
    """Sample text from a trained or published GPT-2 (same seed, same text)."""
    from model.sampling import sample_text
    from trainer.checkpoint import load_model

    model = load_model(checkpoint, device)
    texts = sample_text(model, prompt, num_samples, max_new_tokens, temperature, top_k, top_p, seed)
    for i, text in enumerate(texts):
        typer.echo(f"--- sample {i} ---\n{text}")


def _home(home: Path | None) -> Path:
    from pipelines.common.home import fineforge_home

    return home.resolve() if home else fineforge_home()


@contextlib.contextmanager
def _serving_reports(root: Path, host: str, port: int) -> Iterator[Any]:
    """Serve the HTML reports under `root` over HTTP on host:port for the block (`orchestration.reports`)."""
    from orchestration.reports import ReportServer
    from pipelines.common.errors import UserError

    try:
        reports = ReportServer(root, host, port).start()
    except OSError as e:
        raise UserError(f"cannot serve reports on {host}:{port}: {describe(e)} (choose another --reports-port)") from e
    try:
        yield reports
    finally:
        reports.stop()


STARTUP_TIMEOUT_HELP = "seconds to wait for the Prefect server to answer (default FINEFORGE_STARTUP_TIMEOUT or 600)"


@app.command("server")
def server_command(
    port: int = typer.Option(4200, help="port of the API and the UI"),
    home: Path | None = typer.Option(None, help="FineForge home (default FINEFORGE_HOME or ./.fineforge)"),
    host: str = typer.Option("127.0.0.1", help="address to bind; 0.0.0.0 lets workers on other machines in"),
    reports_port: int | None = typer.Option(None, help="port of the HTML report server (default: port + 1)"),
    startup_timeout: float | None = typer.Option(None, min=1, help=STARTUP_TIMEOUT_HELP),
) -> None:
    """Run a Prefect server (API and UI) with its database under the FineForge home, and serve the HTML reports
    under the home; Ctrl-C or SIGTERM stops both."""
    from orchestration.server import default_api_url, running_server

    root = _home(home)
    with _until_stopped(), _serving_reports(root, host, reports_port or port + 1) as reports:
        _say_waiting(default_api_url(port), startup_timeout, None)
        with running_server(port, root, host=host, timeout=startup_timeout) as proc:
            api = default_api_url(port, host)
            typer.echo(f"FineForge UI: {api.removesuffix('/api')}  (API {api}, reports {reports.url})")
            proc.wait()


def _say_waiting(api_url: str, timeout: float | None, log: Path | None) -> None:
    """Say what the command waits for before the server answers (a first start runs database migrations)."""
    from orchestration.server import startup_timeout

    seconds = timeout or startup_timeout()
    where = f"; its log: {log}" if log else ""
    typer.echo(f"waiting up to {seconds:g} s for the Prefect server to answer {api_url}/health (a first start on a "
               f"fresh home runs database migrations{where})")  # fmt: skip


@contextlib.contextmanager
def _until_stopped() -> Iterator[None]:
    """End quietly on Ctrl-C; exit 128 + signal on SIGTERM or SIGHUP (what started has been stopped by then)."""
    from pipelines.common.processes import StopRequested

    try:
        yield
    except KeyboardInterrupt:
        pass
    except StopRequested as e:
        typer.echo(f"{e}; stopped what it started", err=True)
        raise typer.Exit(128 + e.signum) from None


@app.command("serve")
def serve_command(
    port: int = typer.Option(4200, help="port of the `fineforge server` to use when PREFECT_API_URL is unset"),
    train_model: str = typer.Option("tiny", help="model preset of event-triggered training runs"),
    train_steps: int | None = typer.Option(None, help="steps of event-triggered training runs (default: preset's)"),
    train_config: Path | None = typer.Option(None, help="train config YAML of event-triggered training runs"),
    limit: int | None = typer.Option(None, help="most flow runs at once"),
    reports_url: str | None = typer.Option(
        None, help="report server for report links (default FINEFORGE_REPORTS_URL; with a local server: port + 1)"
    ),
) -> None:
    """Serve every FineForge deployment (curate, tokenize, mix, train, train-on-shards, report, pipeline,
    quality-train, ablation)."""
    from orchestration.reports import REPORTS_ENV, reports_url_for
    from orchestration.server import default_api_url

    api_url = os.environ.get("PREFECT_API_URL")
    if reports_url or not (api_url or os.environ.get(REPORTS_ENV)):
        os.environ[REPORTS_ENV] = reports_url or reports_url_for(port + 1)  # `fineforge server`'s report server
    with _until_stopped():
        _serve(api_url or default_api_url(port), train_model, train_steps, train_config, limit)


def _serve(api_url: str, model: str, steps: int | None, config: Path | None, limit: int | None) -> None:
    typer.echo(f"serving FineForge deployments against {api_url}")
    from flows import TrainSettings, serve_all

    settings = TrainSettings(model=model, steps=steps, config=str(config.resolve()) if config else None)
    serve_all(api_url, settings, limit=limit)


@app.command("up")
def up_command(
    port: int = typer.Option(4200, help="port of the API and the UI (bound to 127.0.0.1)"),
    home: Path | None = typer.Option(None, help="FineForge home (default FINEFORGE_HOME or ./.fineforge)"),
    train_model: str = typer.Option("tiny", help="model preset of event-triggered training runs"),
    train_steps: int | None = typer.Option(None, help="steps of event-triggered training runs (default: preset's)"),
    reports_port: int | None = typer.Option(None, help="port of the HTML report server (default: port + 1)"),
    startup_timeout: float | None = typer.Option(None, min=1, help=STARTUP_TIMEOUT_HELP),
) -> None:
    """Start the server, the report server and serve every deployment, in one command; Ctrl-C or SIGTERM stops all
    three."""
    from orchestration.reports import REPORTS_ENV
    from orchestration.server import default_api_url, running_server
    from pipelines.common.home import HOME_ENV

    root = _home(home)
    log = root / "prefect" / "server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with _until_stopped(), _serving_reports(root, "127.0.0.1", reports_port or port + 1) as reports:
        os.environ.update({REPORTS_ENV: reports.url, HOME_ENV: str(root)})  # inherited by the served flow runs
        _say_waiting(default_api_url(port), startup_timeout, log)
        with running_server(port, root, log_path=log, timeout=startup_timeout):
            typer.echo(f"FineForge UI: http://127.0.0.1:{port}  (reports {reports.url}, server log: {log})")
            _serve(default_api_url(port), train_model, train_steps, None, None)
            typer.echo("stopping the server")


@app.command("deploy")
def deploy_command(
    data_pool: str = typer.Option("fineforge-data", help="process work pool of curate, tokenize and report"),
    train_pool: str = typer.Option("fineforge-train", help="process work pool of train, train-on-shards, pipeline"),
    train_model: str = typer.Option("tiny", help="model preset of event-triggered training runs"),
    train_steps: int | None = typer.Option(None, min=1, help="steps of event-triggered training runs"),
    train_config: Path | None = typer.Option(None, help="train config YAML (a path every train worker can read)"),
) -> None:
    """Register every deployment on Prefect process work pools (created if missing) of the server in
    PREFECT_API_URL; then run `fineforge worker --pool NAME` on the machines that should do the work."""
    from prefect.deployments.runner import EntrypointType

    from flows import TrainSettings, deployments
    from orchestration.pools import deploy_to_pools

    config = str(train_config.resolve()) if train_config else None
    settings = TrainSettings(model=train_model, steps=train_steps, config=config)
    # Module entrypoints (`flows.curate`): a worker imports the flows from the FineForge installed on its machine.
    made = deployments(settings, entrypoint_type=EntrypointType.MODULE_PATH)
    placed = deploy_to_pools(data_pool, train_pool, made)  # a PoolError is the user's: `error: ...`, exit 2
    for name, pool in placed:
        typer.echo(f"{name:<18} -> work pool {pool}")
    typer.echo(
        f"start workers: fineforge worker --pool {data_pool} (CPU machines), --pool {train_pool} (GPU machines)"
    )


@app.command("worker")
def worker_command(
    pool: str = typer.Option(..., help="work pool to take flow runs from (fineforge-data or fineforge-train)"),
    limit: int | None = typer.Option(None, min=1, help="most flow runs at once on this machine"),
    home: Path | None = typer.Option(
        None, help="FineForge home, on storage all machines share (default FINEFORGE_HOME)"
    ),
    reports_url: str | None = typer.Option(
        None, help="base URL of the report server for report links (default FINEFORGE_REPORTS_URL)"
    ),
    name: str | None = typer.Option(None, help="worker name shown in the UI (default: from the host name)"),
) -> None:
    """Run a Prefect process worker for POOL on this machine until Ctrl-C (a thin wrapper around
    `prefect worker start --pool POOL --type process`, with FINEFORGE_HOME made absolute)."""
    from orchestration import pools

    pools.check_pool(pool)  # a PoolError is the user's: `error: ...`, exit 2
    root = _home(home)
    typer.echo(f"worker for pool {pool}: FINEFORGE_HOME={root}", err=True)
    cmd = pools.worker_command(pool, limit, name)
    os.execve(cmd[0], cmd, pools.worker_env(str(root), reports_url))


@app.command("report")
def report_command(
    run_dir: Path = typer.Argument(..., help="curate output folder (summary.json, data/, rejects/)"),
    html: Path | None = typer.Option(None, help="where to write the HTML (default RUN_DIR/report.html)"),
    compare: Path | None = typer.Option(None, help="another curate output folder to compare with"),
    shards: Path | None = typer.Option(None, help="tokenize output (default: a sibling whose manifest names RUN_DIR)"),
    train: Path | None = typer.Option(None, help="training run (default: a sibling whose run.json names the shards)"),
) -> None:
    """Write a self-contained HTML data-quality report of a curate run and print a short summary."""
    from pipelines.report import print_summary, write_report

    path, tables = write_report(run_dir, html, compare=compare, shards=shards, train=train)
    print_summary(tables)
    typer.echo(f"report: {path}")


# The tokenize options mirror `pipelines.tokenize.settings.TokenizeSettings` (defaults, ranges): importing it here
# would load the tokenizer stack for every command, so tests/test_tokenize_settings.py holds the two equal.
@app.command("tokenize")
def tokenize(
    inputs: list[str] = typer.Option(
        ..., "--input", "-i", help="curate output folder, Parquet/JSONL file, folder, glob or fsspec URL (repeatable)"
    ),
    output: Path = typer.Option(..., "--output", "-o", help="folder for the shards and manifest.json"),
    shard_tokens: int = typer.Option(
        100_000_000, help="tokens per shard, >= 1025 (all but each split's last are full)"
    ),
    val_tokens: int | None = typer.Option(
        None, min=0, help="validation tokens, whole documents from the front of the order (default 1% of all; 0: none)"
    ),
    seed: int = typer.Option(0, min=0, help="seed of the document shuffle"),
    no_shuffle: bool = typer.Option(False, "--no-shuffle", help="keep the input order (files sorted by name)"),
    workers: int = typer.Option(1, min=1, help="tokenizer processes (the output is the same for any count)"),
    text_column: str = typer.Option("text", help="column (Parquet) or field (JSONL) holding the text"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace shards of another run in --output"),
) -> None:
    """GPT-2 tokenize documents into llm.c .bin shards plus manifest.json; rerun to resume after a crash.

    Each document gets <|endoftext|> before it. Documents are shuffled by a seeded hash of their index; the
    first documents of that order form the validation split. Same input and settings, same bytes.
    """
    from orchestration.progress import TerminalProgress
    from pipelines.shards import MANIFEST_NAME
    from pipelines.tokenize import run_tokenize

    with TerminalProgress() as progress:
        shuffle_seed = None if no_shuffle else seed
        settings = dict(shard_tokens=shard_tokens, val_tokens=val_tokens, seed=shuffle_seed, text_column=text_column)
        manifest = run_tokenize(inputs, output, workers, overwrite, progress, **settings)
    for split in ("train", "val"):
        shards = sum(s["split"] == split for s in manifest["shards"])
        docs, tokens = manifest["documents"][split], manifest["total_tokens"][split]
        typer.echo(f"{split} {tokens:,} tokens, {docs:,} documents, {shards} shards")
    typer.echo(f"manifest: {(output / MANIFEST_NAME).resolve()}")


@app.command("mix")
def mix_command(
    sources: list[str] = typer.Option(
        ..., "--source", help="NAME=SHARDS:WEIGHT, a tokenize shard set and its share of the tokens (repeatable)"
    ),
    tokens: int = typer.Option(..., help="train tokens of the mixture"),
    output: Path = typer.Option(..., "--output", "-o", help="new folder for the mixture's shards and manifest.json"),
    seed: int = typer.Option(0, help="seed of the documents picked and their order"),
    max_epochs: int = typer.Option(4, help="most passes over any source's train tokens (upsampling limit)"),
    shard_tokens: int = typer.Option(100_000_000, help="tokens per train shard, >= 1025"),
    workers: int = typer.Option(1, help="processes writing shards (the output is the same for any count)"),
) -> None:
    """Mix tokenized shard sets by weight into one shard set of whole documents; rerun to resume after a crash.

    Each source gives its share of the train tokens in whole documents, repeated up to --max-epochs when it is
    smaller; each source's val shards are kept apart (val_NAME_*.bin) so training reports a val loss per source.
    """
    from pipelines.mix import parse_source, run_mix
    from pipelines.shards import MANIFEST_NAME

    specs = [parse_source(s) for s in sources]
    settings = dict(seed=seed, max_epochs=max_epochs, shard_tokens=shard_tokens, workers=workers)
    manifest = run_mix(specs, output, tokens, **settings)
    if abs((total := sum(s.weight for s in specs)) - 1) > 1e-9:
        typer.echo(f"weights sum to {total:g}; normalised to shares of 1")
    for source in manifest["sources"]:
        typer.echo(
            f"{source['name']}: weight {source['weight']:.4g}, {source['train_tokens']:,} train tokens, "
            f"{source['documents']:,} documents, {source['epochs']:g} epochs"
        )
    train, val = manifest["total_tokens"]["train"], manifest["total_tokens"]["val"]
    typer.echo(f"train {train:,} tokens, val {val:,} tokens, {len(manifest['shards'])} shards")
    typer.echo(f"manifest: {(output / MANIFEST_NAME).resolve()}")


@app.command("verify-shards")
def verify_shards(
    manifest: Path = typer.Argument(..., help="manifest.json or the folder holding it"),
    checksums: bool = typer.Option(True, help="recompute every shard's sha256 (reads every byte)"),
) -> None:
    """Check a shard set against its manifest: headers, sizes, token counts, totals and checksums."""
    from pipelines.shards import ShardError, verify

    try:
        loaded = verify(manifest, checksums=checksums)
    except ShardError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    tokens = ", ".join(f"{split} {n:,} tokens" for split, n in loaded.get("total_tokens", {}).items())
    typer.echo(f"{len(loaded['shards'])} shards OK ({tokens})")


config_app = typer.Typer(help="Inspect curate configurations.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@app.command("curate")
def curate_command(
    inputs: list[str] = typer.Option(
        ...,
        "--input",
        "-i",
        help="WARC/WET/ARC, JSONL(.gz/.zst), Parquet or HTML file, folder of them, glob or fsspec URL (repeatable)",
    ),
    output: Path = typer.Option(..., "--output", "-o", help="output: data/, rejects/, quarantine/, summary.json"),
    config: Path | None = typer.Option(None, "--config", "-c", help="curate config YAML (default: FineWeb recipe)"),
    workers: int = typer.Option(1, min=1, help="tasks run at the same time"),
    limit: int | None = typer.Option(None, min=1, help="read at most N documents (for a quick look)"),
    executor: str = typer.Option("local", help="local | ray | slurm (datatrove's executors)"),
    ray_address: str | None = typer.Option(None, help="existing Ray cluster, HOST:PORT (with --executor ray)"),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="write into a folder that is not a curate output (replaces only curate's files)"
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="show datatrove's log here instead of appending it to OUTPUT/curate.log"
    ),
    dedup_against: list[str] = typer.Option(
        [],
        "--dedup-against",
        help="an earlier curate output: drop what it kept (repeatable; replaces the config's dedup_against)",
    ),
) -> None:
    """Curate raw web data with the FineWeb recipe into deduplicated Parquet; rerun the same command to resume."""
    from orchestration.progress import TerminalProgress
    from pipelines.common.processes import interrupts_remembered
    from pipelines.curate import load_config, run_curate
    from pipelines.curate.config import with_overrides, with_ray_address
    from pipelines.curate.output import LOG_FILE
    from pipelines.curate.pii import privacy_warning
    from pipelines.curate.summary import summary_path

    if executor not in ("local", "ray", "slurm"):
        raise ValueError(f"--executor must be local, ray or slurm, not {executor!r}")
    if ray_address is not None and executor != "ray":
        raise ValueError(f"--ray-address needs --executor ray (got --executor {executor})")
    cfg = with_ray_address(load_config(config), ray_address)
    if dedup_against:  # issue 24: absolute, so the config hash does not depend on the working directory
        cfg = with_overrides(cfg, {"dedup_against": [str(Path(p).expanduser().resolve()) for p in dedup_against]})
    warning = privacy_warning(cfg.pii)
    if warning:  # before the run and again under its summary, so it is not lost above the progress
        typer.secho(warning, fg="red", bold=True, err=True)
    try:
        with interrupts_remembered(), TerminalProgress(table_at_end=False) as progress:
            summary = run_curate(
                cfg, inputs, output, workers, executor, limit, overwrite, on_progress=progress, log_to_file=not verbose
            )
    except KeyboardInterrupt as e:
        _exit_resumable(e)
    _print_curate_summary(summary)
    typer.echo(f"summary: {summary_path(output.resolve())}")
    if not verbose:
        typer.echo(f"datatrove log: {output.resolve() / LOG_FILE}")
    if warning:
        typer.secho(warning, fg="red", bold=True, err=True)


def _print_curate_summary(summary: dict[str, Any]) -> None:
    """Print the stage table of a curate summary (status, counts, drop reasons) and one line of totals."""
    typer.echo(f"{'stage':<18} {'status':<6} {'in':>8} {'out':>8}  dropped")
    for stage in summary["stages"]:
        dropped = ", ".join(f"{reason} {n:,}" for reason, n in stage["dropped"].items()) or "-"
        counts = f"{stage['docs_in']:>8,} {stage['docs_out']:>8,}"
        typer.echo(f"{stage['name']:<18} {stage['status']:<6} {counts}  {dropped}")
    skipped = summary["records_skipped"]
    kinds = ", ".join(f"{kind} {n:,}" for kind, n in skipped.items())
    typer.echo(
        f"{summary['records_read']:,} records read, {summary['quarantined']:,} quarantined, "
        f"{sum(skipped.values()):,} not documents{f' ({kinds})' if kinds else ''}"
    )
    typer.echo(
        f"{summary['docs_in']:,} documents in, {summary['docs_out']:,} kept, in {summary['duration_s']:.1f} s "
        f"({summary['docs_per_s']:,.1f} docs/s); run {summary['run_id']}"
    )


@config_app.command("show")
def config_show(
    config: Path | None = typer.Option(None, "--config", "-c", help="curate config YAML (default: FineWeb recipe)"),
) -> None:
    """Print the effective curate config (defaults merged with FILE) as YAML, with its hash."""
    from pipelines.curate import config_hash, config_yaml, load_config

    cfg = load_config(config)
    typer.echo(f"# config_hash: {config_hash(cfg)}")
    typer.echo(config_yaml(cfg), nl=False)


decontam_app = typer.Typer(help="Benchmark decontamination: index eval sets for the `decontaminate` stage.")
app.add_typer(decontam_app, name="decontam", no_args_is_help=True)


@decontam_app.command("index")
def decontam_index(
    evals: list[str] = typer.Option(
        ...,
        "--eval",
        help="eval set: HellaSwag or text JSONL(.gz) or Parquet file, as PATH or NAME=PATH (repeatable)",
    ),
    out: Path = typer.Option(..., "--out", help="index file to write (replaces an index, never another file)"),
    ngram: int = typer.Option(13, "--ngram", help="words per n-gram, 8 to 50 (13: GPT-3's contamination analysis)"),
    text_field: str = typer.Option("text", help="field of the text in records that are not HellaSwag items"),
) -> None:
    """Index the word n-grams of evaluation sets; `decontaminate: {enabled: true, index: OUT}` uses it."""
    from pipelines.curate.decontam_index import build_index, parse_eval_arg

    meta = build_index([parse_eval_arg(value) for value in evals], out, ngram, text_field)
    for s in meta["sets"]:
        typer.echo(
            f"{s['name']}: {s['records']:,} {s['kind']} records, {s['passages']:,} passages, {s['ngrams']:,} "
            f"{ngram}-grams ({s['too_short']:,} passages shorter than {ngram} words)"
        )
    typer.echo(f"index: {out.resolve()}")


quality_app = typer.Typer(help="Train and apply a model-based quality classifier (fastText).", no_args_is_help=True)
app.add_typer(quality_app, name="quality")
_TRAIN = ClassifierSettings()


@quality_app.command("train")
def quality_train(
    out: Path = typer.Option(..., "--out", "-o", help="model file to write (MODEL.bin; its card MODEL.json beside)"),
    data: list[str] = typer.Option(None, "--data", help="labelled JSONL/Parquet file, folder or URL (repeatable)"),
    text_field: str = typer.Option("text", help="field or column holding the text"),
    label_field: str = typer.Option("label", help="field or column holding the label (class name or integer)"),
    positive: list[str] = typer.Option(None, "--positive", help="collection of good text (repeatable; DCLM style)"),
    negative: list[str] = typer.Option(None, "--negative", help="collection of text to filter out (repeatable)"),
    positive_label: str | None = typer.Option(None, help="the good class (default: highest integer, or positive)"),
    test_fraction: float = typer.Option(_TRAIN.test_fraction, help="share of each class held out"),
    seed: int = typer.Option(_TRAIN.seed, help="seed of the split and of fastText (same seed, same model)"),
    epochs: int = typer.Option(_TRAIN.epochs),
    ngrams: int = typer.Option(_TRAIN.ngrams, help="word n-grams"),
    lr: float = typer.Option(_TRAIN.lr, help="learning rate"),
    dim: int = typer.Option(_TRAIN.dim, help="embedding dimensions"),
    buckets: int = typer.Option(_TRAIN.buckets, help="n-gram hash buckets (model size ~ buckets x dim x 4 bytes)"),
    min_count: int = typer.Option(_TRAIN.min_count, help="ignore words seen fewer times"),
) -> None:
    """Train a fastText classifier on labelled texts; write MODEL.bin and MODEL.json and print held-out metrics."""
    from pipelines.quality.train import train_from_inputs

    settings = ClassifierSettings(
        test_fraction=test_fraction,
        seed=seed,
        epochs=epochs,
        ngrams=ngrams,
        lr=lr,
        dim=dim,
        buckets=buckets,
        min_count=min_count,
    )
    card = train_from_inputs(out, settings, data, positive, negative, text_field, label_field, positive_label)
    typer.echo(_held_out(card))
    typer.echo(f"model: {out.resolve()}  card: {out.resolve().with_suffix('.json')}")


def _held_out(card: dict) -> str:
    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    base = card["baseline"] or {}
    return (
        f"trained on {card['n_train']} texts, held out {card['n_test']}: accuracy {num(card['accuracy'])}, "
        f"AUC {num(card['auc'])} (score: {card['score']}, positive: {card['positive_label']})\n"
        f"baseline, FineWeb line-punctuation ratio >= {base.get('threshold', '-')} on the same texts: "
        f"accuracy {num(base.get('accuracy'))}, AUC {num(base.get('auc'))}"
    )


@quality_app.command("score")
def quality_score(
    model: Path = typer.Option(..., "--model", "-m", help="MODEL.bin from `fineforge quality train`"),
    inputs: list[str] = typer.Option(
        ..., "--input", "-i", help="JSONL/Parquet/WARC/HTML file, folder, glob, URL or curate output (repeatable)"
    ),
    output: Path = typer.Option(..., "--output", "-o", help="output: data/ with quality_score, summary.json"),
    workers: int = typer.Option(1, min=1, help="tasks run at the same time"),
    text_field: str = typer.Option("text", help="field or column holding the text"),
) -> None:
    """Score documents with a trained classifier into Parquet like curate's data/ plus a quality_score column."""
    from pipelines.curate.score import run_scoring
    from pipelines.curate.summary import summary_path

    summary = run_scoring(model, inputs, output, workers=workers, text_field=text_field)
    quality = summary["quality"]
    typer.echo(
        f"scored {quality['scored']:,} documents ({summary['quarantined']:,} records quarantined) "
        f"with {model.resolve()} (sha256 {quality['model_sha256'][:16]}...)"
    )
    typer.echo(f"data: {output.resolve() / 'data'}  summary: {summary_path(output.resolve())}")


@app.command("demo-data")
def demo_data_command(
    directory: Path = typer.Argument(..., help="folder to write crawl.warc.gz, docs.jsonl and ground_truth.json"),
) -> None:
    """Write the built-in demo crawl (planted boilerplate, spam, lorem ipsum, non-English, duplicates) offline."""
    from orchestration.demo_data import write_demo_crawl

    truth = write_demo_crawl(directory)
    counts = ", ".join(f"{kind} {n}" for kind, n in truth["counts"].items())
    typer.echo(f"demo crawl in {directory.resolve()}: {counts}")


@app.command("demo")
def demo_command(
    directory: Path = typer.Option(Path(".fineforge/demo"), "--dir", help="output folder; rerun to resume or skip"),
    steps: int = typer.Option(300, min=1, help="training steps of the tiny model (512 tokens each)"),
) -> None:
    """End to end, offline, on the CPU (~2 min): demo crawl -> curate -> tokenize -> train tiny GPT-2 -> report.

    Writes DIR/crawl, DIR/curated, DIR/shards, DIR/run and DIR/report.html and prints a summary of each stage.
    """
    from orchestration.demo import run_demo

    try:
        run_demo(directory, steps)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None


if __name__ == "__main__":
    app()
