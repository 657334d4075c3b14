"""Presentation for people, at the command-line edge: the tables and lines the tasks print.

The library returns values; only the tasks print, and this is how they show them.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.catalog import LATEST, ChannelEvent, ImageRecord
from pipeline.progress import grid


def version_table(records: Sequence[ImageRecord]) -> str:
    """A table of versions (``invoke catalog.list``)."""
    if not records:
        return "no images recorded yet (invoke bake IMAGE)"
    body = []
    for r in records:
        art = r.artifact("local") or (r.artifacts[0] if r.artifacts else None)
        body.append((r.name, r.version, r.status, f"{r.parent[0]}@{r.parent[1]}" if r.parent else "-",
                     r.created_at, art.id[:19] if art else "-"))
    return grid(("IMAGE", "VERSION", "STATUS", "PARENT", "CREATED", "ARTIFACT"), body)


def channel_lines(pointers: dict[str, str | None], history: dict[str, list[ChannelEvent]]) -> list[str]:
    """Where each channel points, each named one followed by its moves (``invoke catalog.channels``)."""
    lines = []
    for channel, version in pointers.items():
        lines.append(f"{channel}: {version or '(none)'}")
        if channel != LATEST:
            lines += [f"  {ev.at} {ev.who} {ev.action}: {ev.from_version or '-'} → {ev.to_version or '-'}"
                      + (f" ({ev.reason})" if ev.reason else "") for ev in history.get(channel, [])]
    return lines
