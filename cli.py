"""The `fineforge` command line: parses arguments, builds configs and delegates to the library.

Library modules are imported inside the commands: `import cli` stays free of torch (5 s of a busy 2-core
machine), which every command paid before, and so does every worker process of a multi-worker curate run
(datatrove's forkserver imports the calling `__main__`, this module, once per pool).
"""

import os
from pathlib import Path

import typer

from trainer.launch import make_train_command

app = typer.Typer(help="FineForge: raw web crawl to a trained GPT-2.", no_args_is_help=True)


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
    """HellaSwag accuracy by completion scoring (mean token loss of each ending, as llm.c)."""
    import json

    from trainer.evaluate import run_hellaswag

    try:
        result = run_hellaswag(checkpoint, data, limit)
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(result))


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

    try:
        model = load_model(checkpoint, device)
        texts = sample_text(model, prompt, num_samples, max_new_tokens, temperature, top_k, top_p, seed)
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    for i, text in enumerate(texts):
        typer.echo(f"--- sample {i} ---\n{text}")


def _home(home: Path | None) -> Path:
    from pipelines.common.home import fineforge_home

    return home.resolve() if home else fineforge_home()


def _start_reports(root: Path, host: str, port: int):
    from orchestration.reports import ReportServer

    try:
        return ReportServer(root, host, port).start()
    except OSError as e:
        typer.echo(f"error: cannot serve reports on {host}:{port}: {e} (choose another --reports-port)", err=True)
        raise typer.Exit(2) from None


@app.command("server")
def server_command(
    port: int = typer.Option(4200, help="port of the API and the UI"),
    home: Path | None = typer.Option(None, help="FineForge home (default FINEFORGE_HOME or ./.fineforge)"),
    host: str = typer.Option("127.0.0.1", help="address to bind; 0.0.0.0 lets workers on other machines in"),
    reports_port: int | None = typer.Option(None, help="port of the HTML report server (default: port + 1)"),
) -> None:
    """Run a Prefect server (API and UI) with its database under the FineForge home, and serve the HTML reports
    under the home; Ctrl-C stops both."""
    from orchestration.server import default_api_url, start_server, wait_healthy
    from pipelines.common.processes import stop_process

    root = _home(home)
    reports = _start_reports(root, host, reports_port or port + 1)
    proc = start_server(port, root, host=host)
    try:
        wait_healthy(default_api_url(port), proc=proc)
        api = default_api_url(port, host)
        typer.echo(f"FineForge UI: {api.removesuffix('/api')}  (API {api}, reports {reports.url})")
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_process(proc)
        reports.stop()


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
    """Serve every FineForge deployment (curate, tokenize, train, train-on-shards, report, pipeline)."""
    from orchestration.reports import REPORTS_ENV, reports_url_for
    from orchestration.server import default_api_url

    api_url = os.environ.get("PREFECT_API_URL")
    if reports_url or not (api_url or os.environ.get(REPORTS_ENV)):
        os.environ[REPORTS_ENV] = reports_url or reports_url_for(port + 1)  # `fineforge server`'s report server
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
) -> None:
    """Start the server, the report server and serve every deployment, in one command; Ctrl-C stops all three."""
    from orchestration.reports import REPORTS_ENV
    from orchestration.server import default_api_url, start_server, wait_healthy
    from pipelines.common.home import HOME_ENV
    from pipelines.common.processes import stop_process

    root = _home(home)
    log = root / "prefect" / "server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    reports = _start_reports(root, "127.0.0.1", reports_port or port + 1)
    os.environ.update({REPORTS_ENV: reports.url, HOME_ENV: str(root)})  # inherited by the served flow runs
    proc = start_server(port, root, log_path=log)
    try:
        wait_healthy(default_api_url(port), proc=proc)
        typer.echo(f"FineForge UI: http://127.0.0.1:{port}  (reports {reports.url}, server log: {log})")
        _serve(default_api_url(port), train_model, train_steps, None, None)
    except KeyboardInterrupt:
        pass
    finally:
        typer.echo("stopping the server")
        stop_process(proc)
        reports.stop()


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
    from flows import TrainSettings
    from orchestration.pools import PoolError, deploy_to_pools

    config = str(train_config.resolve()) if train_config else None
    settings = TrainSettings(model=train_model, steps=train_steps, config=config)
    try:
        placed = deploy_to_pools(data_pool, train_pool, settings)
    except PoolError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
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

    try:
        pools.check_pool(pool)
    except pools.PoolError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
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
    from pipelines.report import ReportError, print_summary, write_report

    try:
        path, tables = write_report(run_dir, html, compare=compare, shards=shards, train=train)
        print_summary(tables)
    except ReportError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"report: {path}")


@app.command("tokenize")
def tokenize(
    inputs: list[str] = typer.Option(
        ..., "--input", "-i", help="curate output folder, Parquet/JSONL file, folder, glob or fsspec URL (repeatable)"
    ),
    output: Path = typer.Option(..., "--output", "-o", help="folder for the shards and manifest.json"),
    shard_tokens: int = typer.Option(100_000_000, min=1, help="tokens per shard (all but each split's last are full)"),
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
    from pipelines.tokenize import run_tokenize

    try:
        with TerminalProgress() as progress:
            shuffle_seed = None if no_shuffle else seed
            manifest = run_tokenize(
                inputs, output, shard_tokens, val_tokens, shuffle_seed, workers, text_column, overwrite, progress
            )
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    for split in ("train", "val"):
        shards = sum(s["split"] == split for s in manifest["shards"])
        docs, tokens = manifest["documents"][split], manifest["total_tokens"][split]
        typer.echo(f"{split} {tokens:,} tokens, {docs:,} documents, {shards} shards")
    typer.echo(f"manifest: {(output / 'manifest.json').resolve()}")


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
) -> None:
    """Curate raw web data with the FineWeb recipe into deduplicated Parquet; rerun the same command to resume."""
    import json

    from orchestration.progress import TerminalProgress
    from pipelines.curate import DropGuardError, load_config, run_curate
    from pipelines.curate.config import with_ray_address

    if executor not in ("local", "ray", "slurm"):
        typer.echo(f"error: --executor must be local, ray or slurm, not {executor!r}", err=True)
        raise typer.Exit(2)
    if ray_address is not None and executor != "ray":
        typer.echo(f"error: --ray-address needs --executor ray (got --executor {executor})", err=True)
        raise typer.Exit(2)
    try:
        cfg = with_ray_address(load_config(config), ray_address)
        with TerminalProgress() as progress:
            summary = run_curate(
                cfg, inputs, output, workers=workers, executor=executor, limit=limit, on_progress=progress
            )
    except (ValueError, FileNotFoundError, DropGuardError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    for stage in summary["stages"]:
        dropped = ", ".join(f"{reason} {n}" for reason, n in stage["dropped"].items()) or "-"
        typer.echo(f"{stage['name']:<18} {stage['docs_in']:>8} -> {stage['docs_out']:>8}  dropped: {dropped}")
    keys = ("run_id", "records_read", "quarantined", "docs_in", "docs_out", "duration_s", "docs_per_s")
    typer.echo(json.dumps({key: summary[key] for key in keys}))
    typer.echo(f"summary: {output.resolve() / 'summary.json'}")


@config_app.command("show")
def config_show(
    config: Path | None = typer.Option(None, "--config", "-c", help="curate config YAML (default: FineWeb recipe)"),
) -> None:
    """Print the effective curate config (defaults merged with FILE) as YAML, with its hash."""
    from pipelines.curate import config_hash, config_yaml, load_config

    try:
        cfg = load_config(config)
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"# config_hash: {config_hash(cfg)}")
    typer.echo(config_yaml(cfg), nl=False)


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
