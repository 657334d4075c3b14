"""``invoke catalog.report``: the catalog as one static HTML page.

Every image with its versions (status, parent, artifact, links to logs, JUnit
and verification reports, and the SBOMs written beside the page), its channels, the lineage graph drawn as SVG
(foundation → base → children), and per version the package changes against the
previous version of the same image. Self-contained: no network, no external
files, one small script that fills in a summary (so a broken page shows up as a
console error in the browser test).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SBOM_LABELS = {"cyclonedx": "CycloneDX", "spdx": "SPDX"}
STATUS_COLOURS = {"verified": "#1a7f37", "failed": "#cf222e", "interrupted": "#9a6700", "revoked": "#8250df",
                  "deleted": "#6e7781", "building": "#0969da"}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _link(path: str | None, label: str) -> str:
    if not path:
        return ""
    return f'<a href="{_e(Path(path).as_uri() if path.startswith("/") else path)}">{_e(label)}</a>'


def lineage_svg(images: Mapping[str, str | None]) -> str:
    """The image graph (name → parent name) as SVG: one column per generation."""
    depth: dict[str, int] = {}

    def level(name: str) -> int:
        if name not in depth:
            parent = images.get(name)
            depth[name] = 1 if parent is None or parent not in images else level(parent) + 1
        return depth[name]

    for name in images:
        level(name)
    columns: dict[int, list[str]] = {0: ["foundation"]}
    for name in sorted(images):
        columns.setdefault(depth[name], []).append(name)
    pos: dict[str, tuple[int, int]] = {}
    for col, names in columns.items():
        for row, name in enumerate(names):
            pos[name] = (20 + col * 170, 20 + row * 60)
    width = 20 + (max(columns) + 1) * 170
    height = 20 + max(len(n) for n in columns.values()) * 60
    parts = [f'<svg id="lineage" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="image lineage">']
    for name, parent in sorted(images.items()):
        x1, y1 = pos[parent if parent in pos else "foundation"]
        x2, y2 = pos[name]
        parts.append(f'<line class="edge" data-from="{_e(parent or "foundation")}" data-to="{_e(name)}" '
                     f'x1="{x1 + 130}" y1="{y1 + 18}" x2="{x2}" y2="{y2 + 18}" stroke="#57606a" stroke-width="2" '
                     f'marker-end="url(#arrow)"/>')
    parts.insert(1, '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
                    'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#57606a"/></marker></defs>')
    for name, (x, y) in pos.items():
        parts.append(f'<g class="node" data-image="{_e(name)}"><rect x="{x}" y="{y}" width="130" height="36" rx="6" '
                     f'fill="#f6f8fa" stroke="#57606a"/><text x="{x + 65}" y="{y + 23}" text-anchor="middle" '
                     f'font-family="sans-serif" font-size="14">{_e(name)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def package_changes(previous: Sequence[Mapping[str, str]], current: Sequence[Mapping[str, str]]) -> dict[str, list]:
    """Added / removed / changed packages between two manifests."""
    a = {p["name"]: p["version"] for p in previous}
    b = {p["name"]: p["version"] for p in current}
    return {"added": sorted((n, b[n]) for n in set(b) - set(a)),
            "removed": sorted((n, a[n]) for n in set(a) - set(b)),
            "changed": sorted((n, a[n], b[n]) for n in set(a) & set(b) if a[n] != b[n])}


def render(doc: Mapping[str, Any], *, title: str = "Kiln image catalog") -> str:
    """The page for a catalog export (``Catalog.export()``)."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for img in doc["images"]:
        by_name.setdefault(img["name"], []).append(img)
    parents = {name: (versions[-1]["parent"] or {}).get("name") for name, versions in by_name.items()}
    channels = doc.get("channels", {})
    body = [f"<h1>{_e(title)}</h1>",
            f'<p class="generated">Generated {_e(datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))} · '
            f'schema_version {_e(doc.get("schema_version"))} · <span id="summary"></span></p>',
            "<h2>Lineage</h2>", lineage_svg(parents)]
    for name in sorted(by_name, key=lambda n: (parents.get(n) is not None, n)):
        body += section(name, by_name[name], channels.get(name, {}))
    return page(title, body)


def section(name: str, versions: Sequence[Mapping[str, Any]], chans: Mapping[str, str]) -> list[str]:
    """One image: its channels, then a table row per version."""
    body = [f'<section class="image" id="image-{_e(name)}" data-image="{_e(name)}">', f"<h2>{_e(name)}</h2>",
            '<p class="channels">' + (" ".join(
                f'<span class="channel" data-channel="{_e(c)}">{_e(c)} → {_e(v)}</span>'
                for c, v in sorted(chans.items())) or "on no channel") + "</p>",
            "<table><thead><tr><th>version</th><th>status</th><th>parent</th><th>created</th>"
            "<th>artifacts</th><th>evidence</th><th>packages vs previous</th></tr></thead><tbody>"]
    previous: Sequence[Mapping[str, str]] | None = None
    for img in versions:
        body.append(row(img, previous))
        if img.get("packages"):
            previous = img["packages"]
    body.append("</tbody></table></section>")
    return body


def row(img: Mapping[str, Any], previous: Sequence[Mapping[str, str]] | None) -> str:
    """One version: status, parent, artifacts, links to its evidence, package changes against ``previous``."""
    parent = img["parent"]
    arts = ", ".join(_e(f"{a['region'] + ':' if a.get('region') else ''}{a['id'][:23]}")
                     for a in img["artifacts"]) or "—"
    evidence = " ".join(x for x in (
        _link(img.get("log_dir"), "logs"),
        _link(str(Path(img["log_dir"]) / "junit.xml") if img.get("log_dir") else None, "JUnit"),
        _link(img.get("report"), "report"),
        *(_link(path, SBOM_LABELS.get(fmt, fmt)) for fmt, path in sorted((img.get("sbom") or {}).items()))) if x)
    if previous is not None and img.get("packages"):
        changes = package_changes(previous, img["packages"])
        rows = ([f"+ {n} {v}" for n, v in changes["added"]] + [f"− {n} {v}" for n, v in changes["removed"]]
                + [f"~ {n} {a} → {b}" for n, a, b in changes["changed"]])
        summary = (f'{len(changes["added"])} added, {len(changes["removed"])} removed, '
                   f'{len(changes["changed"])} changed')
        pkgs = (f"<details><summary>{summary}</summary><pre>{_e(chr(10).join(rows))}</pre></details>"
                if rows else "no change")
    else:
        pkgs = f'{len(img.get("packages") or [])} packages' if img.get("packages") else "—"
    colour = STATUS_COLOURS.get(img["status"], "#24292f")
    return (f'<tr class="version" data-status="{_e(img["status"])}"><td>{_e(img["version"])}</td>'
            f'<td><span class="status" style="color:{colour}">{_e(img["status"])}</span></td>'
            f'<td>{_e(parent["name"] + "@" + parent["version"]) if parent else "foundation"}</td>'
            f'<td>{_e(img["created_at"])}</td><td>{arts}</td><td>{evidence}</td><td>{pkgs}</td></tr>')


def page(title: str, body: Sequence[str]) -> str:
    """The whole document around ``body``, with its style and the script that fills in the summary."""
    script = """
document.addEventListener('DOMContentLoaded', function () {
  var rows = document.querySelectorAll('tr.version');
  var verified = document.querySelectorAll('tr.version[data-status="verified"]').length;
  var images = document.querySelectorAll('section.image').length;
  document.getElementById('summary').textContent =
    images + ' images, ' + rows.length + ' versions, ' + verified + ' verified';
  document.body.dataset.ready = 'yes';
});"""
    style = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #24292f; }
table { border-collapse: collapse; width: 100%; margin-bottom: 2em; font-size: 14px; }
th, td { border-bottom: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
.channel { background: #ddf4ff; border-radius: 4px; padding: 2px 6px; margin-right: 6px; }
.status { font-weight: 600; } pre { margin: 0; } .generated { color: #57606a; }"""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{style}</style></head><body>"
            + "\n".join(body) + f"<script>{script}</script></body></html>\n")


def page_path(output: Path) -> Path:
    """The page's file: ``output`` itself, or index.html in that folder."""
    return output / "index.html" if output.suffix != ".html" else output


def write(doc: Mapping[str, Any], output: Path) -> Path:
    """Write the page to ``output`` (a file, or a folder that gets index.html)."""
    path = page_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(doc))
    return path
