"""Read the Packer template set with python-hcl2, to check a build plan before Packer runs.

Packer's own message for a missing or unknown variable comes after a slow start
and without Kiln's context; checking the planned variables against the
template's declarations gives one clear line up front.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError


@dataclass(frozen=True)
class Variable:
    """A ``variable`` block: its name, type expression and whether it has a default."""

    name: str
    type: str
    has_default: bool
    file: Path


def parse_file(path: Path) -> dict[str, Any]:
    """One ``.pkr.hcl`` file as python-hcl2 sees it (string quotes stripped)."""
    import hcl2

    options = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
    try:
        with open(path) as fh:
            return hcl2.load(fh, serialization_options=options)
    except Exception as exc:  # noqa: BLE001 - python-hcl2 raises lark errors of many kinds
        line = getattr(exc, "line", None)
        where = f"{path}:{line}" if line else str(path)
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{where}: invalid HCL: {detail}", hint="fix the template syntax") from None


def variables(template_dir: Path) -> dict[str, Variable]:
    """Every variable declared in the template folder."""
    found: dict[str, Variable] = {}
    files = sorted(template_dir.glob("*.pkr.hcl"))
    if not files:
        raise ConfigError(f"{template_dir}: no *.pkr.hcl templates")
    for path in files:
        for block in parse_file(path).get("variable", []):
            for name, body in block.items():
                found[name] = Variable(name=name, type=_expr(body.get("type", "")), has_default="default" in body,
                                       file=path)
    return found


def _expr(value: object) -> str:
    """python-hcl2 wraps expressions as ``${…}``; give back the bare expression."""
    text = str(value)
    return text[2:-1] if text.startswith("${") and text.endswith("}") else text


def check_plan(template_dir: Path, planned: Mapping[str, object]) -> None:
    """Every required variable is given and every given variable is declared."""
    declared = variables(template_dir)
    unknown = sorted(set(planned) - set(declared))
    if unknown:
        raise ConfigError(f"{template_dir}: the build passes undeclared variable(s) {', '.join(unknown)}",
                          hint="declare them in variables.pkr.hcl")
    missing = sorted(n for n, v in declared.items() if not v.has_default and n not in planned)
    if missing:
        where = declared[missing[0]].file
        raise ConfigError(f"{where}: variable(s) {', '.join(missing)} have no default and no value",
                          hint="give them a default or teach the pipeline to pass them")
