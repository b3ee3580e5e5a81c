"""The `fineforge` command line: parses arguments, builds configs and delegates to the library."""

import os
import signal
from pathlib import Path

import typer

from trainer.launch import make_train_command
from trainer.stage import run_train_command

app = typer.Typer(help="FineForge: raw web crawl to a trained GPT-2.", no_args_is_help=True)

app.command("train")(make_train_command(run_train_command))  # the same flags as `python -m trainer`
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

    try:
        result = evaluate_text(checkpoint, data, seq_len)
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(result))


@app.command("ablate")
def ablate_command(
    inputs: list[str] = typer.Option(..., "--input", "-i", help="raw input every variant curates (repeatable)"),
    variants: list[str] = typer.Option(..., "--variant", help="NAME=CONFIG.yaml, a curate recipe (repeatable)"),
    eval_data: list[str] = typer.Option(
        ..., "--eval-data", help="evaluation set: text JSONL/Parquet or HellaSwag JSONL (repeatable)"
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
    from pipelines.ablate.spec import AblationSpec, parse_seeds, parse_variant
    from pipelines.curate import DropGuardError
    from trainer.stage import StopRequested, TrainerExit

    try:
        optional = {
            "model": model,
            "tokens": tokens,
            "seq_len": seq_len,
            "batch_tokens": batch_tokens,
            "lr": lr,
            "eval_points": eval_points,
        }
        spec = AblationSpec(
            inputs=inputs,
            variants=[parse_variant(v) for v in variants],
            eval_data=eval_data,
            out=str(out),
            seeds=parse_seeds(seeds),
            workers=workers,
            training_concurrency=training_concurrency,
            **{key: value for key, value in optional.items() if value is not None},
        )
        run_ablation(spec, typer.echo)
    except (ValueError, FileNotFoundError, DropGuardError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except TrainerExit as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    except (StopRequested, KeyboardInterrupt) as e:
        signum = e.signum if isinstance(e, StopRequested) else int(signal.SIGINT)
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


@app.command("server")
def server_command(
    port: int = typer.Option(4200, help="port of the API and the UI (bound to 127.0.0.1)"),
    home: Path | None = typer.Option(None, help="FineForge home (default FINEFORGE_HOME or ./.fineforge)"),
) -> None:
    """Run a local Prefect server (API and UI) with its database under the FineForge home; Ctrl-C stops it."""
    from orchestration.server import default_api_url, start_server, wait_healthy
    from pipelines.common.processes import stop_process

    proc = start_server(port, _home(home))
    try:
        wait_healthy(default_api_url(port), proc=proc)
        typer.echo(f"FineForge UI: http://127.0.0.1:{port}  (API {default_api_url(port)})")
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_process(proc)


@app.command("serve")
def serve_command(
    port: int = typer.Option(4200, help="port of the `fineforge server` to use when PREFECT_API_URL is unset"),
    train_model: str = typer.Option("tiny", help="model preset of event-triggered training runs"),
    train_steps: int | None = typer.Option(None, help="steps of event-triggered training runs (default: preset's)"),
    train_config: Path | None = typer.Option(None, help="train config YAML of event-triggered training runs"),
    limit: int | None = typer.Option(None, help="most flow runs at once"),
) -> None:
    """Serve every FineForge deployment (curate, tokenize, train, train-on-shards, report, pipeline)."""
    from orchestration.server import default_api_url

    _serve(os.environ.get("PREFECT_API_URL") or default_api_url(port), train_model, train_steps, train_config, limit)


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
) -> None:
    """Start the server and serve every deployment, in one command; Ctrl-C stops both."""
    from orchestration.server import default_api_url, start_server, wait_healthy
    from pipelines.common.processes import stop_process

    root = _home(home)
    log = root / "prefect" / "server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = start_server(port, root, log_path=log)
    try:
        wait_healthy(default_api_url(port), proc=proc)
        typer.echo(f"FineForge UI: http://127.0.0.1:{port}  (server log: {log})")
        _serve(default_api_url(port), train_model, train_steps, None, None)
    except KeyboardInterrupt:
        pass
    finally:
        typer.echo("stopping the server")
        stop_process(proc)


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
    from pipelines.tokenize import run_tokenize

    try:
        manifest = run_tokenize(
            inputs, output, shard_tokens, val_tokens, None if no_shuffle else seed, workers, text_column, overwrite
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
) -> None:
    """Curate raw web data with the FineWeb recipe into deduplicated Parquet; rerun the same command to resume."""
    import json

    from pipelines.curate import DropGuardError, load_config, run_curate

    if executor not in ("local", "ray", "slurm"):
        typer.echo(f"error: --executor must be local, ray or slurm, not {executor!r}", err=True)
        raise typer.Exit(2)
    try:
        summary = run_curate(load_config(config), inputs, output, workers=workers, executor=executor, limit=limit)
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
