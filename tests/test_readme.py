"""The README is a front page whose commands run as written.

The quick test checks its length and that every relative link (docs pages, pictures, anchors)
points at something that exists. The slow one runs every `sweepnet` command of its ```bash
blocks, in order, in a scratch folder holding a copy of `sweeps/`, as a new user would."""

import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sweepnet import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_LINES = 250

# commands of the README's ```bash blocks that are not run here, each with its reason
SKIP = {
    "sweepnet run sweeps/olah.toml": "the full experiment: 4,096 networks, minutes of training",
}

BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _complete(command: str) -> bool:
    """Whether ``command`` is a whole shell command (no open quote, no trailing backslash)."""
    if command.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(command, comments=True)
    except ValueError:  # "No closing quotation": the command goes on on the next line
        return False
    return True


def _commands(block: str) -> list[str]:
    """The shell commands of one code block, a command continued over lines joined to one."""
    out, pending = [], ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending = f"{pending}\n{line}" if pending else line
        if _complete(pending):
            out.append(pending.strip())
            pending = ""
    assert not pending, f"README: unfinished command in a bash block: {pending!r}"
    return out


def _key(command: str) -> str:
    """A command without its comment and extra spaces, as SKIP names it."""
    return " ".join(shlex.split(command, comments=True))


def readme_commands() -> list[str]:
    """Every `sweepnet` command of the README's ```bash blocks, in order, installs left out."""
    found = []
    for block in BASH_BLOCK.findall(README.read_text()):
        for command in _commands(block):
            if not command.startswith(("sweepnet ", "python -m sweepnet ")):
                continue
            if "pip install" in command or "venv" in command:
                continue
            found.append(command)
    return found


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.MULTILINE | re.DOTALL)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}


def _check_links(page: Path) -> list[str]:
    """The page's relative links, each checked to point at a file (and heading) that exists."""
    targets = [t for t in LINK.findall(page.read_text()) if not re.match(r"[a-z]+:", t)]
    for target in targets:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.is_file(), f"{page.name} links to a missing file: {target}"
        if anchor:
            assert anchor in _anchors(file), f"{page.name} links to a missing anchor: {target}"
    return targets


def test_docs_links_resolve():
    for page in [ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]:
        _check_links(page)


def test_readme_is_a_front_page():
    assert len(README.read_text().splitlines()) <= MAX_LINES
    assert any(t.startswith("docs/") for t in _check_links(README))
    # the extraction finds the first run and the commands after it
    commands = [_key(c) for c in readme_commands()]
    assert commands[0] == "sweepnet run sweeps/quick.toml"
    assert set(SKIP) <= set(commands), "SKIP names a command the README no longer has"
    assert len(set(commands) - set(SKIP)) >= 5


SHELL = re.compile(r"[$|<>`;&]")  # a command that needs the shell (substitution, pipes, ...)


@pytest.mark.slow
def test_readme_commands_run(tmp_path, monkeypatch):
    """Commands that need no shell run in this process (``sweepnet.cli.main`` on the words
    the shell would pass: no interpreter start-up each); the others run in bash, with
    ``sweepnet`` on PATH."""
    shutil.copytree(ROOT / "sweeps", tmp_path / "sweeps")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "sweepnet"  # `sweepnet` on PATH is this interpreter's sweepnet
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m sweepnet "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, SWEEPNET_HOST_DEVICES="2", SWEEPNET_KERNEL_BUILD="0",
               PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT / "src"),
                                                      os.environ.get("PYTHONPATH")) if p))
    for command in readme_commands():
        if _key(command) in SKIP:
            continue
        if command.startswith("python -m sweepnet "):
            command = "sweepnet " + command[len("python -m sweepnet "):]
        if not SHELL.search(command):
            monkeypatch.chdir(tmp_path)
            rc = cli.main(shlex.split(command, comments=True)[1:])
            assert rc == 0, f"README command failed (exit {rc}):\n{command}"
            continue
        result = subprocess.run(["bash", "-c", "set -o pipefail\n" + command], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, (
            f"README command failed (exit {result.returncode}):\n{command}\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    assert (tmp_path / "results" / "quick" / "report.html").is_file()
    assert (tmp_path / "net.png").is_file()
