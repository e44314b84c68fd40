"""Every python and shell block in README.md and docs/*.md runs as written.

A fenced block whose language is python, sh, bash, shell or console is run;
a block that is only a fragment (needs a server, a key, a variable from the
prose) is marked with the line ``<!-- excerpt -->`` immediately before its
opening fence and skipped. Shell blocks run under ``bash -euo pipefail`` (a
console block: its ``$ `` lines), python blocks with this interpreter, each in
a fresh scratch copy of the repository (its top-level entries symlinked, so
what a block writes lands in the scratch directory) with ``../shared`` beside
it, offline. ``governor`` and ``python`` on PATH are this environment's.
A failure names the file and line of the block's fence.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

EXCERPT = "<!-- excerpt -->"
SHELL = {"sh", "bash", "shell", "console"}
RUNNABLE = SHELL | {"python", "py", "python3"}
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
DOC_FILES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True, kw_only=True)
class Block:
    """One fenced code block of a markdown file."""

    file: Path
    """The markdown file."""
    line: int
    """1-based line of the opening fence."""
    lang: str
    """The first word of the fence's info string, lower-cased ('' when none)."""
    code: str
    """The block's text, without the fences."""
    excerpt: bool
    """Whether the line immediately before the fence is ``<!-- excerpt -->``."""

    @property
    def where(self) -> str:
        try:
            name = self.file.relative_to(REPO_ROOT)
        except ValueError:
            name = self.file
        return f"{name}:{self.line}"


def extract_blocks(path: Path, text: str | None = None) -> list[Block]:
    """The fenced blocks of a markdown file, in order (CommonMark fences: ``` or ~~~, 3 or more)."""
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, info = m.group("fence"), m.group("info").strip()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines):
            close = re.match(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[i])
            if close:
                break
            body.append(lines[i])
            i += 1
        excerpt = start > 0 and lines[start - 1].strip() == EXCERPT
        lang = info.split()[0].lower() if info else ""
        blocks.append(Block(file=path, line=start + 1, lang=lang, code="\n".join(body) + "\n", excerpt=excerpt))
        i += 1
    return blocks


def runnable_blocks() -> list[Block]:
    return [b for f in DOC_FILES for b in extract_blocks(f) if b.lang in RUNNABLE and not b.excerpt]


def _scratch_repo(tmp: Path) -> Path:
    """tmp/repo with every top-level entry of the repository symlinked, and tmp/shared -> ../shared."""
    repo = tmp / "repo"
    repo.mkdir(parents=True)
    for entry in REPO_ROOT.iterdir():
        if entry.name in {".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}:
            continue
        (repo / entry.name).symlink_to(entry)
    shared = REPO_ROOT.parent / "shared"
    if shared.exists():
        (tmp / "shared").symlink_to(shared)
    return repo


def _script(block: Block) -> list[str]:
    if block.lang == "console":
        commands = [ln[2:] for ln in block.code.splitlines() if ln.startswith("$ ")]
        return ["bash", "-euo", "pipefail", "-c", "\n".join(commands)]
    if block.lang in SHELL:
        return ["bash", "-euo", "pipefail", "-c", block.code]
    return [sys.executable, "-c", block.code]


def run_block(block: Block, tmp: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    repo = _scratch_repo(tmp)
    bindir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        # litellm would fetch its price map over the network when a block imports it first
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "NO_COLOR": "1",
    }
    env.pop("PYTHONPATH", None)
    return subprocess.run(_script(block), cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)


def _tail(text: str, n: int = 40) -> str:
    lines = text.rstrip().splitlines()
    return "\n".join((["..."] if len(lines) > n else []) + lines[-n:])


def failure_message(block: Block, proc: subprocess.CompletedProcess[str]) -> str:
    return (
        f"{block.where}: ```{block.lang} block exited {proc.returncode}\n"
        f"--- block ---\n{block.code}--- stdout ---\n{_tail(proc.stdout)}\n--- stderr ---\n{_tail(proc.stderr)}\n"
        f"Make the block run as written (offline, on the shipped example files), or mark it a fragment "
        f"with the line {EXCERPT} immediately before its opening fence."
    )


@pytest.mark.parametrize("block", [pytest.param(b, id=b.where) for b in runnable_blocks()])
def test_doc_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    proc = run_block(block, tmp_path)
    if proc.returncode != 0:
        pytest.fail(failure_message(block, proc), pytrace=False)


def test_readme_has_runnable_blocks_and_its_first_two_commands_stay_two() -> None:
    readme = [b for b in runnable_blocks() if b.file.name == "README.md"]
    assert {b.lang for b in readme} >= {"python", "sh"}
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    head = text.split("---", 1)[0]
    commands = [ln for ln in head.splitlines() if ln.startswith("    ") and ln.strip()]
    assert len(commands) == 2, commands
    assert "governor replay" in commands[0] and "pytest" in commands[1]


MARKDOWN = """# t

```python
print("runs")
```

<!-- excerpt -->
```python
print(undefined_name)
```

<!-- excerpt -->

```sh
exit 3
```

````markdown
```sh
not a block of its own
```
````

~~~console
$ echo hi
hi
~~~

```yaml
a: 1
```
"""


def test_extractor_finds_fences_and_honours_only_an_adjacent_excerpt_marker(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    blocks = extract_blocks(doc, MARKDOWN)
    assert [(b.line, b.lang, b.excerpt) for b in blocks] == [
        (3, "python", False),
        (8, "python", True),
        (14, "sh", False),
        (18, "markdown", False),
        (24, "console", False),
        (29, "yaml", False),
    ]
    assert blocks[3].code == "```sh\nnot a block of its own\n```\n"
    # the marker separated from its fence by a blank line does not count: the block runs and fails
    proc = run_block(blocks[2], tmp_path / "a")
    assert proc.returncode == 3
    assert failure_message(blocks[2], proc).startswith(f"{doc}:14: ```sh block exited 3")
    console = run_block(blocks[4], (tmp_path / "b"))
    assert console.returncode == 0 and console.stdout == "hi\n"
