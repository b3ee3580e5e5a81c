"""The `fineforge` command line: parses arguments, builds configs and delegates to the library."""

import typer

app = typer.Typer(help="FineForge: raw web crawl to a trained GPT-2.", no_args_is_help=True)


if __name__ == "__main__":
    app()
