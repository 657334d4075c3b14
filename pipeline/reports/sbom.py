"""Standard SBOMs of an image version: CycloneDX 1.6 or SPDX 2.3 JSON, from its recorded package list.

Written with the formats' own libraries (``cyclonedx-python-lib``, ``spdx-tools``;
spdx-tools validates what it writes, the CycloneDX schema check runs in the tests).
The image is the document's subject, with
its artifact id as a hash (a local artifact id is the sha256 of the file) and its
parent as a dependency; every Debian package carries its purl
(``pkg:deb/debian/nginx@1.22.1-9?arch=amd64&distro=debian-12``). Input is an image
as ``catalog.export`` writes it, so an SBOM can be made from any export.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packageurl import PackageURL

Image = Mapping[str, Any]  # one image of a catalog export
DEBIAN_RELEASES = {"bookworm": "debian-12", "trixie": "debian-13"}


def purl(package: Mapping[str, str], distro: str) -> str:
    """The package URL of a Debian package."""
    return PackageURL(type="deb", namespace="debian", name=package["name"], version=package["version"],
                      qualifiers={"arch": package.get("architecture") or "all", "distro": distro}).to_string()


def sha256_of(image: Image | None) -> str | None:
    """The image file's sha256, when one of its artifact ids is one."""
    for art in (image or {}).get("artifacts", []):
        if art["id"].startswith("sha256:"):
            return art["id"].split(":", 1)[1]
    return None


def cyclonedx(image: Image, parent: Image | None, distro: str) -> str:
    """The CycloneDX 1.6 JSON document of ``image``."""
    # Imported here, not at the top: the library costs ~0.1 s to import, which every task (a no-op bake
    # among them) would otherwise pay at start-up.
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6

    def subject(img: Image) -> Component:
        digest = sha256_of(img)
        return Component(type=ComponentType.OPERATING_SYSTEM, name=img["name"], version=img["version"],
                         bom_ref=f"{img['name']}@{img['version']}",
                         hashes=[HashType(alg=HashAlgorithm.SHA_256, content=digest)] if digest else [],
                         properties=[Property(name="kiln:artifact", value=artifact_text(a))
                                     for a in img.get("artifacts", [])])

    bom = Bom()
    bom.metadata.component = root = subject(image)
    bom.metadata.timestamp = created(image)
    packages = [Component(type=ComponentType.LIBRARY, name=p["name"], version=p["version"],
                          purl=PackageURL.from_string(purl(p, distro)), bom_ref=purl(p, distro))
                for p in image.get("packages", [])]
    depends = list(packages)
    if parent is not None:
        depends.insert(0, subject(parent))
    for component in depends:
        bom.components.add(component)
    bom.register_dependency(root, depends)
    return str(JsonV1Dot6(bom).output_as_string(indent=2))


def spdx(image: Image, parent: Image | None, distro: str) -> str:
    """The SPDX 2.3 JSON document of ``image`` (written only if spdx-tools finds it valid)."""
    from spdx_tools.spdx import model as spdx_model  # imported here for the same reason as cyclonedx's
    from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

    def subject(img: Image, spdx_id: str) -> spdx_model.Package:
        digest = sha256_of(img)
        return spdx_model.Package(
            spdx_id=spdx_id, name=img["name"], version=img["version"], download_location=spdx_model.SpdxNoAssertion(),
            files_analyzed=False, primary_package_purpose=spdx_model.PackagePurpose.OPERATING_SYSTEM,
            checksums=[spdx_model.Checksum(spdx_model.ChecksumAlgorithm.SHA256, digest)] if digest else [],
            comment="; ".join(artifact_text(a) for a in img.get("artifacts", [])) or None)

    root_id = "SPDXRef-Image"
    packages = [subject(image, root_id)]
    relations = [spdx_model.Relationship("SPDXRef-DOCUMENT", spdx_model.RelationshipType.DESCRIBES, root_id)]
    if parent is not None:
        packages.append(subject(parent, "SPDXRef-Parent"))
        relations.append(spdx_model.Relationship(root_id, spdx_model.RelationshipType.DEPENDS_ON, "SPDXRef-Parent"))
    for number, p in enumerate(image.get("packages", []), 1):
        spdx_id = f"SPDXRef-Package-{number}-{re.sub(r'[^A-Za-z0-9.-]', '-', p['name'])}"
        packages.append(spdx_model.Package(
            spdx_id=spdx_id, name=p["name"], version=p["version"], download_location=spdx_model.SpdxNoAssertion(),
            files_analyzed=False, external_references=[spdx_model.ExternalPackageRef(
                spdx_model.ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", purl(p, distro))]))
        relations.append(spdx_model.Relationship(root_id, spdx_model.RelationshipType.CONTAINS, spdx_id))
    ref = f"{image['name']}-{image['version']}"
    unique = uuid.uuid5(uuid.NAMESPACE_URL, f"{ref}:{sha256_of(image)}")
    info = spdx_model.CreationInfo(
        spdx_version="SPDX-2.3", spdx_id="SPDXRef-DOCUMENT", name=ref, created=created(image),
        document_namespace=f"https://spdx.org/spdxdocs/{ref}-{unique}",
        creators=[spdx_model.Actor(spdx_model.ActorType.TOOL, "kiln")])
    stream = io.StringIO()
    write_document_to_stream(spdx_model.Document(info, packages=packages, relationships=relations), stream,
                             validate=True)
    return stream.getvalue()


def artifact_text(artifact: Mapping[str, Any]) -> str:
    """``local:sha256:…`` or ``aws:eu-west-1:ami-…``."""
    return ":".join(str(x) for x in (artifact["target"], artifact.get("region"), artifact["id"]) if x)


def created(image: Image) -> datetime:
    """When the version was made, as the document's creation time."""
    try:
        return datetime.fromisoformat(image["created_at"]).astimezone(UTC)
    except (KeyError, TypeError, ValueError):
        return datetime.now(UTC)


FORMATS: Mapping[str, tuple[Callable[[Image, Image | None, str], str], str]] = {
    "cyclonedx": (cyclonedx, ".cdx.json"),
    "spdx": (spdx, ".spdx.json"),
}


def document(doc: Mapping[str, Any], name: str, version: str, fmt: str, distro: str) -> str:
    """The SBOM of ``name@version`` from a catalog export ``doc``, in format ``fmt`` (a key of FORMATS)."""
    by_ref = {(img["name"], img["version"]): img for img in doc["images"]}
    image = by_ref[(name, version)]
    parent = image.get("parent")
    return FORMATS[fmt][0](image, by_ref.get((parent["name"], parent["version"])) if parent else None, distro)


def write_all(doc: Mapping[str, Any], folder: Path, distro: str) -> dict[tuple[str, str], dict[str, str]]:
    """One SBOM per format for every verified version, in ``folder``; (name, version) → label → file name."""
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[tuple[str, str], dict[str, str]] = {}
    for img in doc["images"]:
        if img["status"] != "verified":
            continue
        for fmt, (_, suffix) in FORMATS.items():
            path = folder / f"{img['name']}-{img['version']}{suffix}"
            path.write_text(document(doc, img["name"], img["version"], fmt, distro))
            written.setdefault((img["name"], img["version"]), {})[fmt] = path.name
    return written
