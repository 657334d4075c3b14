"""What changed between two versions: packages and input files."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.catalog import Catalog


@dataclass(frozen=True)
class Diff:
    """Packages added / removed / changed, input files changed, between ``a`` and ``b``."""

    a: str
    b: str
    added: list[tuple[str, str]]
    removed: list[tuple[str, str]]
    changed: list[tuple[str, str, str]]
    files: list[str]
    values: list[tuple[str, str, str]]


def compare(catalog: Catalog, a: tuple[str, str], b: tuple[str, str]) -> Diff:
    """Compare two recorded versions (usually of the same image)."""
    rec_a, rec_b = catalog.get(*a), catalog.get(*b)

    def index(ref: tuple[str, str]) -> dict[str, str]:
        return {f"{p['name']}:{p['architecture']}": p["version"] for p in catalog.packages(*ref)}

    pa, pb = index(a), index(b)
    added = sorted((k, pb[k]) for k in set(pb) - set(pa))
    removed = sorted((k, pa[k]) for k in set(pa) - set(pb))
    changed = sorted((k, pa[k], pb[k]) for k in set(pa) & set(pb) if pa[k] != pb[k])
    fa = dict(rec_a.inputs.get("files", {}) or {})
    fb = dict(rec_b.inputs.get("files", {}) or {})
    files = sorted(p for p in set(fa) | set(fb) if fa.get(p) != fb.get(p))
    va = dict(rec_a.inputs.get("values", {}) or {})
    vb = dict(rec_b.inputs.get("values", {}) or {})
    values = sorted((k, str(va.get(k, "")), str(vb.get(k, ""))) for k in set(va) | set(vb) if va.get(k) != vb.get(k))
    return Diff(rec_a.ref, rec_b.ref, added, removed, changed, files, values)
