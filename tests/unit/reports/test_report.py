"""The HTML catalog report, loaded in headless Chromium from Debian's packages."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipeline.catalog import Artifact, Catalog
from pipeline.reports import report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def export(tmp_path):
    with Catalog.open(tmp_path / "catalog.db") as cat:
        b = cat.begin_bake(name="base", parent=None, fingerprint=digest("b"), git_commit="c", git_dirty=False,
                           run_id="r", log_dir=str(tmp_path / "logs/base"))
        cat.add_artifact("base", b, Artifact(target="local", id=digest("base"), path="/s/base.qcow2"))
        cat.set_status("base", b, "verified")
        cat.record_packages("base", b, [{"name": "openssl", "version": "3.0.15-1", "architecture": "amd64"}])
        apps = []
        for i, pkgs in enumerate(({"nginx": "1.22.1-9"}, {"nginx": "1.22.1-9+deb12u1", "curl": "7.88"})):
            a = cat.begin_bake(name="app", parent=("base", b), fingerprint=digest(f"a{i}"), git_commit="c",
                               git_dirty=False, run_id="r", log_dir=str(tmp_path / f"logs/app{i}"))
            cat.add_artifact("app", a, Artifact(target="local", id=digest(f"app{i}"), path=f"/s/app{i}.qcow2"))
            cat.set_status("app", a, "verified")
            cat.record_packages("app", a, [{"name": n, "version": v, "architecture": "amd64"} for n, v in pkgs.items()])
            apps.append(a)
        cat.promote("app", apps[0], "prod")
        w = cat.begin_bake(name="worker", parent=("base", b), fingerprint=digest("w"), git_commit="c",
                           git_dirty=False, run_id="r", log_dir="/l")
        cat.set_status("worker", w, "failed")
        return cat.export()


class Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def browse(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
                           "--v=0", *extra, page.as_uri()], capture_output=True, text=True, timeout=120)


def test_report_in_headless_chromium(export, tmp_path):
    page = report.write(export, tmp_path / "report")
    done = browse(page, tmp_path, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    console = [ln for ln in done.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert console == []
    dom = Dom()
    dom.feed(done.stdout)
    body = next(attrs for tag, attrs in dom.elements if tag == "body")
    assert body.get("data-ready") == "yes"  # the page's script ran to the end
    text = "".join(dom.text)
    assert "3 images, 4 versions, 3 verified" in text
    sections = [a["data-image"] for t, a in dom.elements if t == "section"]
    assert sections == ["base", "app", "worker"]
    nodes = {a["data-image"] for t, a in dom.elements if t == "g" and "data-image" in a}
    edges = {(a["data-from"], a["data-to"]) for t, a in dom.elements if t == "line"}
    assert nodes == {"foundation", "base", "app", "worker"}
    assert edges == {("foundation", "base"), ("base", "app"), ("base", "worker")}
    channels = [a["data-channel"] for t, a in dom.elements if t == "span" and "data-channel" in a]
    assert "prod" in channels and "latest" in channels
    assert "1 added, 0 removed, 1 changed" in text and "nginx 1.22.1-9 → 1.22.1-9+deb12u1" in text
    assert any(t == "a" and a.get("href", "").endswith("logs/app1/junit.xml") for t, a in dom.elements)
    shot = tmp_path / "report.png"
    done = browse(page, tmp_path, f"--screenshot={shot}", "--window-size=1280,1400")
    assert done.returncode == 0 and shot.stat().st_size > 10_000
    # kept for people to look at
    (Path(__file__).parent.parent.parent / ".test-output").mkdir(exist_ok=True)
    shutil.copyfile(shot, Path(__file__).parent.parent.parent / ".test-output" / "catalog-report.png")


def test_a_broken_script_would_be_caught(export, tmp_path):
    page = report.write(export, tmp_path / "report")
    page.write_text(page.read_text().replace("document.getElementById('summary')", "document.getElementById('nope')"))
    done = browse(page, tmp_path, "--dump-dom")
    assert any("Uncaught" in ln for ln in done.stderr.splitlines())
    assert 'data-ready="yes"' not in done.stdout
