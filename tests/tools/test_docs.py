"""The documentation site: its task pages say what ``invoke --help`` says, and MkDocs builds it strictly."""

import shutil
from pathlib import Path

from tools import docs

README_LINES = 150


def copy_site(tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(docs.ROOT / "docs", tmp_path / "docs")
    shutil.copy2(docs.CONFIG, tmp_path / "mkdocs.yml")
    return tmp_path / "docs", tmp_path / "mkdocs.yml"


def test_every_task_page_quotes_invoke_help_as_it_is_now():
    assert docs.check(docs.ROOT / "docs") == []


def test_a_flag_the_page_does_not_know_is_named_with_its_page_and_line(tmp_path):
    pages, _ = copy_site(tmp_path)
    page = pages / "tasks" / "upkeep.md"
    page.write_text(page.read_text().replace("--dry-run", "--dry-run-please", 1))
    problems = docs.check(pages)
    assert len(problems) == 1 and problems[0].startswith(f"{page}:") and "invoke --help prune" in problems[0]
    assert docs.refresh(pages) == [page] and docs.check(pages) == []


def test_a_task_no_page_quotes_is_named(tmp_path):
    pages, _ = copy_site(tmp_path)
    page = pages / "tasks" / "channels.md"
    page.write_text(page.read_text().replace("<!-- invoke --help restore -->", "<!-- no quote -->"))
    assert docs.check(pages) == [f"{pages}: no page quotes invoke --help restore (add it to the page of its group)"]


def test_the_site_builds_strictly_and_a_broken_link_fails_it(tmp_path):
    built = docs.build(tmp_path / "site")
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "site" / "tasks" / "bake" / "index.html").exists()
    pages, config = copy_site(tmp_path / "copy")
    (pages / "index.md").write_text((pages / "index.md").read_text() + "\n[gone](no-such-page.md)\n")
    broken = docs.build(tmp_path / "broken", config)
    assert broken.returncode != 0 and "no-such-page.md" in broken.stderr


def test_the_readme_is_what_a_visitor_needs_first():
    readme = (docs.ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_LINES
    assert "./setup.sh bake app" in readme and "./setup.sh test" in readme
