"""SBOMs: CycloneDX 1.6 and SPDX 2.3 documents of a recorded version, checked by each library's own validator."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.json import json_parser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from pipeline.catalog import Artifact, Catalog
from pipeline.reports import sbom
from tests.conftest import ROOT

INVOKE = str(Path(sys.executable).parent / "invoke")
BASE_DIGEST, APP_DIGEST = "1" * 64, "2" * 64
PACKAGES = [{"name": "nginx", "version": "1.22.1-9", "architecture": "amd64"},
            {"name": "libssl3", "version": "3.0.17-1~deb12u2", "architecture": "amd64"},
            {"name": "tzdata", "version": "2025b-0+deb12u1", "architecture": "all"}]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    with Catalog.open(tmp_path / "catalog.db") as cat:
        base = cat.begin_bake(name="base", parent=None, fingerprint="sha256:" + "0" * 64, git_commit="c",
                              git_dirty=False, run_id="r", log_dir="/l")
        cat.add_artifact("base", base, Artifact(target="local", id=f"sha256:{BASE_DIGEST}", path="/s/base.qcow2"))
        cat.record_packages("base", base, PACKAGES[1:])
        cat.set_status("base", base, "verified")
        app = cat.begin_bake(name="app", parent=("base", base), fingerprint="sha256:" + "3" * 64, git_commit="c",
                             git_dirty=False, run_id="r", log_dir="/l")
        cat.add_artifact("app", app, Artifact(target="local", id=f"sha256:{APP_DIGEST}", path="/s/app.qcow2"))
        cat.record_packages("app", app, PACKAGES)
        cat.set_status("app", app, "verified")
        failed = cat.begin_bake(name="app", parent=("base", base), fingerprint="sha256:" + "4" * 64, git_commit="c",
                                git_dirty=False, run_id="r", log_dir="/l")
        cat.set_status("app", failed, "failed")
    return tmp_path


def invoke(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INVOKE, *args], cwd=ROOT, env={**os.environ, "KILN_HOME": str(home)}, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_cyclonedx_is_valid_and_describes_the_image(home):
    done = invoke(home, "catalog.sbom", "app@latest")
    assert done.returncode == 0, done.stderr
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(done.stdout) is None
    bom = json.loads(done.stdout)
    subject = bom["metadata"]["component"]
    assert subject["name"] == "app" and subject["hashes"] == [{"alg": "SHA-256", "content": APP_DIGEST}]
    purls = {c["purl"] for c in bom["components"] if "purl" in c}
    assert "pkg:deb/debian/nginx@1.22.1-9?arch=amd64&distro=debian-12" in purls
    assert "pkg:deb/debian/libssl3@3.0.17-1~deb12u2?arch=amd64&distro=debian-12" in purls
    [parent] = [c for c in bom["components"] if c["name"] == "base"]
    assert parent["hashes"] == [{"alg": "SHA-256", "content": BASE_DIGEST}]
    [deps] = [d for d in bom["dependencies"] if d["ref"] == subject["bom-ref"]]
    assert parent["bom-ref"] in deps["dependsOn"] and len(deps["dependsOn"]) == 1 + len(PACKAGES)


def test_spdx_is_valid_and_describes_the_image(home, tmp_path):
    out = tmp_path / "app.spdx.json"
    done = invoke(home, "catalog.sbom", "app@latest", "--format", "spdx", "--output", str(out))
    assert done.returncode == 0 and done.stdout == f"{out}\n", done.stderr
    assert validate_full_spdx_document(json_parser.parse_from_file(str(out))) == []
    doc = json.loads(out.read_text())
    assert doc["spdxVersion"] == "SPDX-2.3"
    by_id = {p["SPDXID"]: p for p in doc["packages"]}
    image = by_id["SPDXRef-Image"]
    assert image["name"] == "app" and image["checksums"] == [{"algorithm": "SHA256", "checksumValue": APP_DIGEST}]
    relations = {(r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"]) for r in doc["relationships"]}
    assert ("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image") in relations
    assert ("SPDXRef-Image", "DEPENDS_ON", "SPDXRef-Parent") in relations
    assert by_id["SPDXRef-Parent"]["name"] == "base"
    locators = {ref["referenceLocator"] for p in doc["packages"] for ref in p.get("externalRefs", [])}
    assert "pkg:deb/debian/tzdata@2025b-0%2Bdeb12u1?arch=all&distro=debian-12" in locators
    contained = [r for r in relations if r[1] == "CONTAINS"]
    assert len(contained) == len(PACKAGES)


def test_a_root_image_has_no_parent(home):
    bom = json.loads(invoke(home, "catalog.sbom", "base@latest").stdout)
    assert [c["name"] for c in bom["components"]] == ["libssl3", "tzdata"]


@pytest.mark.parametrize(("args", "message"), [
    (("catalog.sbom", "app@latest", "--format", "swid"), "unknown SBOM format 'swid' — formats: cyclonedx, spdx"),
    (("catalog.sbom", "ghost@latest"), "ghost has no verified version to describe"),
    (("catalog.sbom", "app"), "'app' names no version"),
])
def test_bad_requests_are_one_line(home, args, message):
    done = invoke(home, *args)
    assert done.returncode == 1 and done.stderr.startswith(f"kiln: error: {message}"), done.stderr
    assert done.stdout == ""


def test_a_version_without_packages_has_no_sbom(home):
    with Catalog.open(home / "catalog.db", create=False) as cat:
        failed = cat.versions("app")[-1].version
    done = invoke(home, "catalog.sbom", f"app@{failed}")
    assert done.returncode == 1 and f"app@{failed} has no recorded package list" in done.stderr


def test_the_report_links_one_sbom_per_format_for_each_verified_version(home, tmp_path):
    done = invoke(home, "catalog.report", "--output", str(tmp_path / "report"))
    assert done.returncode == 0, done.stderr
    written = sorted(p.name for p in (tmp_path / "report" / "sbom").iterdir())
    with Catalog.open(home / "catalog.db", create=False) as cat:
        verified = [r for r in cat.versions() if r.status == "verified"]
    assert written == sorted(f"{r.name}-{r.version}{suffix}" for r in verified for _, suffix in sbom.FORMATS.values())
    page = (tmp_path / "report" / "index.html").read_text()
    for name in written:
        assert f'href="sbom/{name}"' in page
