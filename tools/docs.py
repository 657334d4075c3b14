"""The documentation site (``invoke docs``): its task pages held to ``invoke --help``, and MkDocs' strict build.

A task page quotes each task's help under a marker line::

    <!-- invoke --help bake -->
    ```text
    Usage: inv[oke] [--core-opts] bake [--options] [other tasks here ...]
    ...
    ```

``check`` compares every quote with what ``invoke --help TASK`` prints now (on a pipe: 80 columns) and
names every task no page quotes; ``refresh`` rewrites the quotes. So a flag renamed in ``tasks.py`` fails
the tests until its page says so too.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pipeline import ROOT  # where tasks.py and mkdocs.yml are

QUOTE = re.compile(r"(<!-- invoke --help (?P<task>[\w.-]+) -->\n```text\n)(?P<text>.*?)(```)", re.S)


@functools.cache  # one process per task and run of Kiln's own tasks
def help_text(task: str) -> str:
    """What ``invoke --help TASK`` prints on a pipe (80 columns), run from Kiln's checkout as a user runs it.

    A process of its own each time: invoke hands a task's help texts to the first parser built from it, so a
    second parse of the same task objects in one process prints its flags without them."""
    done = subprocess.run([str(Path(sys.executable).parent / "invoke"), "--help", task], cwd=ROOT,
                          capture_output=True, text=True, check=True, env={**os.environ, "NO_COLOR": "1"})
    return "\n".join(line.rstrip() for line in done.stdout.strip("\n").splitlines()) + "\n"


def help_texts(tasks: Iterable[str]) -> dict[str, str]:
    """``help_text`` of each task, a few at once."""
    names = sorted(set(tasks))
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(names, pool.map(help_text, names), strict=True))


def task_names() -> list[str]:
    """Every task ``invoke --list`` shows, dotted names included."""
    done = subprocess.run([str(Path(sys.executable).parent / "invoke"), "--list", "--list-format", "json"], cwd=ROOT,
                          capture_output=True, text=True, check=True)

    def names(collection: dict[str, Any], prefix: str = "") -> list[str]:
        own = [prefix + task["name"] for task in collection["tasks"]]
        return own + [n for sub in collection["collections"] for n in names(sub, f"{prefix}{sub['name']}.")]

    return sorted(names(json.loads(done.stdout)))


def pages(docs: Path) -> dict[Path, str]:
    """Every page's text, read once."""
    return {page: page.read_text() for page in sorted(docs.rglob("*.md"))}


def help_now(texts: dict[Path, str]) -> dict[str, str]:
    """``invoke --help`` now of every task the pages quote."""
    return help_texts(found["task"] for text in texts.values() for found in QUOTE.finditer(text))


def check(docs: Path) -> list[str]:
    """One line per quote that differs from ``invoke --help`` now, and per task no page quotes."""
    texts = pages(docs)
    now = help_now(texts)
    problems = [f"{page}:{text.count(chr(10), 0, found.start()) + 1}: the quote of invoke --help {found['task']} is "
                "not what it prints now (run invoke docs --refresh)"
                for page, text in texts.items() for found in QUOTE.finditer(text)
                if found["text"] != now[found["task"]]]
    return problems + [f"{docs}: no page quotes invoke --help {task} (add it to the page of its group)"
                       for task in task_names() if task not in now]


def refresh(docs: Path) -> list[Path]:
    """Rewrite every quote with what ``invoke --help`` prints now; the pages that changed."""
    texts = pages(docs)
    now = help_now(texts)
    changed = []
    for page, text in texts.items():
        new = QUOTE.sub(lambda m: m.group(1) + now[m["task"]] + m.group(4), text)
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
