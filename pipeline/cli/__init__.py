"""The command-line edge: turn Kiln's errors into one line and an exit code.

Tasks call ``guarded`` around their work. Expected errors (KilnError) print one
line — what, where, how to fix, which log — and exit 1 (75 when another
machine holds the image's lease and the bake was told not to wait). An interrupt (Ctrl-C or
SIGTERM, which Jenkins sends on abort) exits 130/143 after teardown has run.
Anything unexpected keeps its traceback in a debug log whose path is printed.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from invoke import Task
from invoke.exceptions import Exit
from invoke.parser import Argument

from pipeline.cli import environment
from pipeline.config import default_paths
from pipeline.errors import KilnError, Terminated
from pipeline.progress import Reporter

T = TypeVar("T")
PAUSE_ENV = "KILN_PAUSE_AT"
PAUSE_SECONDS_ENV = "KILN_PAUSE_SECONDS"
StepHook = Callable[[str, str, Reporter], None]


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


@contextmanager
def signals() -> Iterator[None]:
    """Deliver SIGTERM as an exception for the duration of a task."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def debug_log() -> Path:
    """Where an unexpected error's traceback is written."""
    folder = default_paths().logs
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"debug-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.log"


def save_traceback(text: str) -> str:
    """Write ``text`` to the debug log and say where; the crash handler must never crash itself.

    When KILN_HOME cannot hold it (the very fault being reported, perhaps), the
    traceback goes to a temporary file instead, and failing that nowhere."""
    try:
        path = debug_log()
        path.write_text(text)
        return f"traceback in {path}"
    except Exception:  # noqa: BLE001 — any failure here would hide the error being reported
        pass
    try:
        fd, name = tempfile.mkstemp(prefix="kiln-debug-", suffix=".log")
        with os.fdopen(fd, "w") as out:
            out.write(text)
        return f"traceback in {name}"
    except Exception:  # noqa: BLE001
        return "traceback not saved: no writable folder"


def guarded(work: Callable[[], T], *, on_error: Callable[[], None] | None = None) -> T:
    """Run ``work``; map failures to one stderr line and an invoke Exit."""
    try:
        with signals():
            environment.check()
            return work()
    except KilnError as exc:
        if on_error:
            on_error()
        print(f"kiln: error: {exc.oneline()}", file=sys.stderr)
        raise Exit(code=exc.exit_code) from None
    except KeyboardInterrupt as exc:
        if on_error:
            on_error()
        code = 143 if isinstance(exc, Terminated) else 130
        where = getattr(exc, "where", "")
        verified = getattr(exc, "verified", ())
        kept = f"{', '.join(verified)} verified before the stop" if verified else "nothing was recorded as verified"
        print(f"kiln: interrupted{' ' + where if where else ''}; cleaned up, {kept}", file=sys.stderr)
        raise Exit(code=code) from None
    except Exit:
        raise
    except BrokenPipeError:
        # The reader went away (`invoke catalog.export | head`): stop quietly, as coreutils do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise Exit(code=141) from None
    except Exception:
        saved = save_traceback(traceback.format_exc())
        if on_error:
            on_error()
        print(f"kiln: internal error: {sys.exc_info()[1]!r} — {saved}", file=sys.stderr)
        raise Exit(code=2) from None


class _Satisfies(Argument):
    """A flag that, once given, fills a positional argument — so ``bake --all`` needs no IMAGE."""

    def __init__(self, *, fills: Argument, fill_value: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fills = fills
        self.fill_value = fill_value

    def set_value(self, value: Any, cast: bool = True) -> None:
        super().set_value(value, cast)
        if value and self.fills.value is None:
            self.fills.set_value(self.fill_value, cast=False)


class OptionalPositionalTask(Task):
    """A task whose positional ``target`` may be replaced by the flag ``flag`` (invoke requires positionals)."""

    positional_name = "image"
    flag_name = "all_"
    fill_value = ""

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        args = super().get_arguments(ignore_unknown_help)
        positional = next(a for a in args if a.name == self.positional_name)
        out = []
        for arg in args:
            if arg.name == self.flag_name:
                arg = _Satisfies(fills=positional, fill_value=self.fill_value, names=arg.names, kind=arg.kind,
                                 default=arg.default, help=arg.help, positional=arg.positional,
                                 optional=arg.optional, incrementable=arg.incrementable, attr_name=arg.attr_name)
            out.append(arg)
        return out


def step_hooks(env: Mapping[str, str]) -> tuple[StepHook, ...]:
    """The hooks a bake calls before each step, as the environment asks.

    ``KILN_PAUSE_AT=<step>:<image>`` holds that image's bake just before that step
    for ``KILN_PAUSE_SECONDS`` (default 600), on every target: the fault suite
    uses it to interrupt a step too short to hit by timing (``record``).
    """
    point = env.get(PAUSE_ENV, "")
    if not point:
        return ()
    seconds = float(env.get(PAUSE_SECONDS_ENV, "600"))

    def pause(step: str, image: str, reporter: Reporter) -> None:
        if f"{step}:{image}" == point:
            reporter.line(f"{image}: holding before {step} ({PAUSE_ENV} is set)")
            time.sleep(seconds)

    return (pause,)
