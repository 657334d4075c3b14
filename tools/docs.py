"""The documentation site (``invoke docs``): its task pages held to ``invoke --help``, and MkDocs' strict build.

A task page quotes each task's help under a marker line::

    <!-- invoke --help bake -->
    ```text
    Usage: inv[oke] [--core-opts] bake [--options] [other tasks here ...]
    ...
    ```

``check`` compares every quote with what ``invoke --help TASK`` prints now (80 columns, as on a pipe) and
names every task no page quotes; ``refresh`` rewrites the quotes. So a flag renamed in ``tasks.py`` fails
the tests until its page says so too.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # where tasks.py and mkdocs.yml are
QUOTE = re.compile(r"(<!-- invoke --help (?P<task>[\w.-]+) -->\n```text\n)(?P<text>.*?)(```)", re.S)


def help_text(task: str) -> str:
    """What ``invoke --help TASK`` prints, run in this process from Kiln's checkout (so at 80 columns)."""
    from invoke import Program

    out = io.StringIO()
    with contextlib.chdir(ROOT), contextlib.redirect_stdout(out):
        Program(binary="inv[oke]", binary_names=["invoke", "inv"]).run(["invoke", "--help", task], exit=False)
    return "\n".join(line.rstrip() for line in out.getvalue().strip("\n").splitlines()) + "\n"


def task_names() -> list[str]:
    """Every task ``invoke --list`` shows, dotted names included."""
    from invoke import Collection
    from invoke.loader import FilesystemLoader

    with contextlib.chdir(ROOT):
        module, parent = FilesystemLoader(start=str(ROOT)).load("tasks")
    return sorted(Collection.from_module(module).task_names)


def pages(docs: Path) -> list[Path]:
    return sorted(docs.rglob("*.md"))


def check(docs: Path) -> list[str]:
    """One line per quote that differs from ``invoke --help`` now, and per task no page quotes."""
    problems, quoted = [], set()
    for page in pages(docs):
        for found in QUOTE.finditer(page.read_text()):
            task = found["task"]
            quoted.add(task)
            line = page.read_text().count("\n", 0, found.start()) + 1
            if found["text"] != help_text(task):
                problems.append(f"{page}:{line}: the quote of invoke --help {task} is not what it prints now "
                                f"(run invoke docs --refresh)")
    problems += [f"{docs}: no page quotes invoke --help {task} (add it to the page of its group)"
                 for task in task_names() if task not in quoted]
    return problems


def refresh(docs: Path) -> list[Path]:
    """Rewrite every quote with what ``invoke --help`` prints now; the pages that changed."""
    changed = []
    for page in pages(docs):
        text = page.read_text()
        new = QUOTE.sub(lambda m: m.group(1) + help_text(m["task"]) + m.group(4), text)
        if new != text:
            page.write_text(new)
            changed.append(page)
    return changed


CONFIG = ROOT / "mkdocs.yml"
QUIET = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about MkDocs 2, not about this site


def build(site: Path, config: Path = CONFIG) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` into ``site``: a broken link, a page missing from the nav or a bad anchor fails."""
    argv = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)]
    return subprocess.run(argv, capture_output=True, text=True, check=False, env=QUIET)


def serve(port: int) -> None:
    """Serve the site on 127.0.0.1 only, rebuilt on every edit, until Ctrl-C."""
    subprocess.run([sys.executable, "-m", "mkdocs", "serve", "--strict", "--config-file", str(CONFIG),
                    "--dev-addr", f"127.0.0.1:{port}"], check=False, env=QUIET)
