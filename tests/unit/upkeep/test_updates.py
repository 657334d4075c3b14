"""Pending updates: Debian version order, Packages parsing, and the security verdict."""

import lzma

import pytest

from pipeline.upkeep import updates


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("1.0", "1.0", 0),
    ("1.0", "1.1", -1),
    ("1.10", "1.9", 1),
    ("1.0~rc1", "1.0", -1),
    ("1.0", "1.0+deb12u1", -1),
    ("3.0.15-1~deb12u1", "3.0.17-1~deb12u2", -1),
    ("1:1.0", "2.0", 1),
    ("2.36-9+deb12u7", "2.36-9+deb12u10", -1),
    ("1.2.13.dfsg-1", "1:1.2.13.dfsg-1", -1),
    ("252.30-1~deb12u2", "252.30-1~deb12u2", 0),
    ("1.0-1", "1.0-1.1", -1),
    ("7.2+dfsg-7+deb12u18", "7.2+dfsg-7+deb12u9", 1),
])
def test_debian_version_order(a, b, expected):
    assert updates.compare_versions(a, b) == expected
    assert updates.compare_versions(b, a) == -expected


PACKAGES = """Package: openssl
Version: 3.0.17-1~deb12u2
Architecture: amd64

Package: openssl
Version: 3.0.15-1~deb12u1
Architecture: amd64

Package: chrony
Version: 4.3-2+deb12u1
"""


def test_parse_packages_keeps_the_highest():
    assert updates.parse_packages(PACKAGES) == {"openssl": "3.0.17-1~deb12u2", "chrony": "4.3-2+deb12u1"}


def test_pending_marks_security_and_sorts_it_first():
    manifest = [{"name": "openssl", "version": "3.0.15-1~deb12u1", "architecture": "amd64"},
                {"name": "chrony", "version": "4.3-2", "architecture": "amd64"},
                {"name": "bash", "version": "5.2.15-2+b7", "architecture": "amd64"}]
    indexes = [("bookworm", {"openssl": "3.0.15-1~deb12u1", "chrony": "4.3-2+deb12u1", "bash": "5.2.15-2+b7"}),
               ("bookworm-security", {"openssl": "3.0.17-1~deb12u2"})]
    found = updates.pending(manifest, indexes)
    assert [(u.name, u.candidate, u.security) for u in found] == [
        ("openssl", "3.0.17-1~deb12u2", True), ("chrony", "4.3-2+deb12u1", False)]
    assert found[0].describe() == "openssl 3.0.15-1~deb12u1 → 3.0.17-1~deb12u2"


def test_index_urls_and_cache(tmp_path, monkeypatch):
    assert updates.index_urls("deb http://deb.debian.org/debian-security bookworm-security main") == [
        ("bookworm-security",
         "http://deb.debian.org/debian-security/dists/bookworm-security/main/binary-amd64/Packages.xz")]
    with pytest.raises(Exception, match="cannot read the apt source"):
        updates.index_urls("http://x bookworm")
    served = tmp_path / "Packages.xz"
    served.write_bytes(lzma.compress(PACKAGES.encode()))
    url = served.as_uri()
    assert updates.load_index(url, tmp_path / "cache") == {"openssl": "3.0.17-1~deb12u2", "chrony": "4.3-2+deb12u1"}
    served.unlink()  # the second read comes from the cache
    assert updates.load_index(url, tmp_path / "cache")["openssl"] == "3.0.17-1~deb12u2"
    with pytest.raises(Exception, match="cannot fetch the package index"):
        updates.load_index(url, tmp_path / "cache", max_age=0)
