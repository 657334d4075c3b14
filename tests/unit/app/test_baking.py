"""Which images a task works on: one, several in one argument, or all."""

import pytest

from pipeline import config
from pipeline.app import baking
from pipeline.errors import ConfigError
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def project() -> config.Project:
    return config.load(ROOT)


@pytest.mark.parametrize(("image", "all_", "names"), [
    ("app", False, ["app"]),
    ("base,app", False, ["base", "app"]),
    ("app base", False, ["app", "base"]),
    (" base , app,app ", False, ["base", "app"]),
    (",base,", False, ["base"]),
    ("", True, ["app", "base"]),
])
def test_select(project, image, all_, names):
    assert baking.select(project, image, all_) == names


@pytest.mark.parametrize(("image", "all_", "message"), [
    ("base,nope", False, "unknown image 'nope'"),
    (",", False, "give an IMAGE or --all"),
    ("app", True, "give an IMAGE or --all, not both"),
])
def test_select_refuses(project, image, all_, message):
    with pytest.raises(ConfigError, match=message):
        baking.select(project, image, all_)
