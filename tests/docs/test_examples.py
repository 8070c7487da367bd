"""Every ```python and ```sql block of README.md and docs/**/*.md runs, as a reader would run it.

The marker convention (also described in docs/README.md): a block is a complete program unless
the line right before its fence is an HTML comment marking it as a fragment.

    <!-- example: NAME -->        a complete program, named so that fragments can point at it
    <!-- fragment of: NAME -->    part of a complete program: NAME is the name of a complete
                                  block (marked as above) or the path, from the repository's
                                  root, of a program in the repository that CI runs

A complete ```python block runs in a subprocess (``sys.executable``, in an empty temporary
directory) with ``PGQUEUE_DSN`` naming a migrated database of its own, and must exit 0 within
the timeout. A complete ```sql block runs through asyncpg on such a database and must not
raise. A fragment runs nothing; the test checks that the example it names exists. And every
relative link of these files leads to a file that exists, and to a heading of it if it names one.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON_TIMEOUT = 60  # seconds; an example that runs a worker stops it itself
_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!--\s*(example|fragment of):\s*(\S+)\s*-->$")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, from 1
    language: str
    code: str
    marker: str | None  # "example", "fragment of" or None
    name: str | None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def blocks_in(path: Path) -> list[Block]:
    """The fenced python and sql blocks of one file, with the marker right before each."""
    lines = path.read_text().splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        language = fence.group(1)
        if language in ("python", "sql"):
            marker = _MARKER.match(lines[index - 1].strip()) if index else None
            found.append(
                Block(
                    path=path,
                    line=index + 1,
                    language=language,
                    code="\n".join(lines[index + 1 : end]) + "\n",
                    marker=marker.group(1) if marker else None,
                    name=marker.group(2) if marker else None,
                )
            )
        index = end + 1
    return found


ALL_BLOCKS = [block for path in markdown_files() for block in blocks_in(path)]
COMPLETE = [block for block in ALL_BLOCKS if block.marker != "fragment of"]
FRAGMENTS = [block for block in ALL_BLOCKS if block.marker == "fragment of"]
EXAMPLE_NAMES = {block.name for block in COMPLETE if block.name is not None}


def test_the_docs_have_examples_and_complete_names_are_unique() -> None:
    assert COMPLETE, "no complete examples found"
    names = [block.name for block in COMPLETE if block.name is not None]
    assert len(names) == len(set(names)), f"example names used twice: {sorted(names)}"


@pytest.mark.parametrize("block", FRAGMENTS, ids=lambda block: block.id)
def test_a_fragment_names_a_complete_example(block: Block) -> None:
    assert block.name in EXAMPLE_NAMES or (REPO / str(block.name)).is_file(), (
        f"{block.id}: '{block.name}' is neither a complete example in the docs "
        "(<!-- example: NAME -->) nor a file of the repository"
    )


@pytest.mark.parametrize("block", COMPLETE, ids=lambda block: block.id)
async def test_a_complete_example_runs(block: Block, dsn: str, tmp_path: Path) -> None:
    if block.language == "sql":
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(block.code)
        finally:
            await connection.close()
        return
    await run_python(block, dsn, tmp_path)


async def run_python(block: Block, dsn: str, directory: Path) -> None:
    script = directory / "example.py"
    script.write_text(block.code)
    env = {k: v for k, v in os.environ.items() if k not in {"PGQUEUE_DSN", "DATABASE_URL"}}
    env["PGQUEUE_DSN"] = dsn
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        cwd=directory,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), PYTHON_TIMEOUT)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        pytest.fail(f"{block.id} ran past {PYTHON_TIMEOUT} s:\n{output.decode(errors='replace')}")
    assert process.returncode == 0, (
        f"{block.id} exited {process.returncode}:\n{output.decode(errors='replace')}"
    )


def prose_lines(path: Path) -> list[str]:
    """The lines of a markdown file outside its fenced blocks."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchors_of(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a markdown file."""
    headings = (line.lstrip("#").strip() for line in prose_lines(path) if line.startswith("#"))
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize(
    "path",
    [*markdown_files(), REPO / "examples" / "README.md"],
    ids=lambda path: str(path.relative_to(REPO)),
)
def test_every_relative_link_leads_somewhere(path: Path) -> None:
    broken = []
    for line in prose_lines(path):
        for target in _LINK.findall(line):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file, _, anchor = target.partition("#")
            destination = (path.parent / file).resolve() if file else path
            if not destination.exists() or (
                anchor and destination.suffix == ".md" and anchor not in anchors_of(destination)
            ):
                broken.append(target)
    assert not broken, f"{path.relative_to(REPO)}: broken links {broken}"
