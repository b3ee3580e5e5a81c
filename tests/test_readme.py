"""The README and the Makefile as a new user meets them (issue 20): commands that work as written, prose said once.

- `make` prints short step lines and the line that puts `fineforge` on PATH, not its recipes and comments
  (`make -n` lists what would run and echo, without running it).
- Every `--flag` of a `fineforge ...` command in the README's code blocks is an option of that command.
- No sentence of the README is there twice (a pasted half paragraph in the Report section was).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import typer.main

from cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_prints_steps_and_the_activate_line() -> None:
    # -W pyproject.toml: as if the venv were out of date, so the install recipe is listed too.
    done = subprocess.run(
        ["make", "-n", "-W", "pyproject.toml", "demo", "DEMO_DIR=/tmp/unused"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    echoed = [line for line in done.stdout.splitlines() if line.startswith("echo ")]
    silent = [line for line in done.stdout.splitlines() if not line.startswith("echo ")]
    assert not [line for line in done.stdout.splitlines() if line.lstrip().startswith("#")], done.stdout
    assert any("source .venv/bin/activate" in line for line in echoed), done.stdout
    # make -n lists silenced commands as well; `make demo` itself prints only the echo lines.
    makefile = (ROOT / "Makefile").read_text()
    recipes = [line for line in makefile.splitlines() if line.startswith("\t") and not line.startswith("\t\t")]
    assert all(line.startswith(("\t@", "\t$(Q)", "\trm -rf")) for line in recipes), recipes
    assert silent, done.stdout


def _readme_commands() -> list[tuple[list[str], list[str]]]:
    """(command path, --flags) of every `fineforge ...` line in the README's bash blocks."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("#")[0].split("&&"):
                match = re.search(r"(?:^|\s)(?:\.venv/bin/)?fineforge ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?(.*)", part)
                if match:
                    path = [match.group(1)] + ([match.group(2)] if match.group(2) else [])
                    found.append((path, re.findall(r"--[a-z][a-z0-9-]*", match.group(3))))
    return found


def test_readme_commands_use_existing_options() -> None:
    root = typer.main.get_command(app)
    commands = _readme_commands()
    assert len(commands) > 15
    for path, flags in commands:
        command = root.get_command(None, path[0])
        assert command is not None, f"README: fineforge {path[0]} is not a command"
        if len(path) > 1 and hasattr(command, "get_command"):
            command = command.get_command(None, path[1])
            assert command is not None, f"README: fineforge {' '.join(path)} is not a command"
        options = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
        missing = [flag for flag in flags if flag not in options]
        assert not missing, f"README: fineforge {' '.join(path)} has no {missing}"


def test_readme_says_each_sentence_once() -> None:
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    sentences = [" ".join(s.split()) for s in re.split(r"(?<=[.:;])\s+", prose)]
    long = [s for s in sentences if len(s.split()) >= 8]
    repeated = sorted({s for s in long if long.count(s) > 1})
    assert not repeated, repeated
