"""The Jenkinsfile, run by a real Groovy against a recording stand-in of the pipeline DSL."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from invoke.exceptions import ParseError
from invoke.parser import Parser

from tests.conftest import ROOT

RECORDER = Path(__file__).parent / "recorder.groovy"
CASES = [
    {"IMAGES": "all", "TARGET": "aws", "FORCE": False, "PROMOTE_TO": "", "JOBS": "2"},
    {"IMAGES": "all", "TARGET": "aws", "FORCE": True, "PROMOTE_TO": "prod", "JOBS": "4"},
    {"IMAGES": "app", "TARGET": "local", "FORCE": False, "PROMOTE_TO": "staging", "JOBS": "1"},
    {"IMAGES": " base  app ", "TARGET": "local", "FORCE": True, "PROMOTE_TO": "prod", "JOBS": " 2 "},
]


def java_home() -> str:
    return str(Path(os.path.realpath(shutil.which("java") or "/usr/bin/java")).parents[1])


def record(params: dict) -> list[dict]:
    done = subprocess.run(["groovy", str(RECORDER), str(ROOT / "Jenkinsfile"), json.dumps(params)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "JAVA_HOME": java_home()})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module", params=CASES, ids=lambda p: f"{p['IMAGES']}-{p['TARGET']}-promote:{p['PROMOTE_TO']}")
def events(request) -> list[dict]:
    return record(request.param)


def calls(events: list[dict], name: str, under: str = "") -> list[dict]:
    return [e for e in events if e["call"] == name and e["path"].startswith(under)]


def invoke_commands(events: list[dict]) -> list[list[str]]:
    """Every `.venv/bin/invoke …` an sh step runs, as argv after the program name."""
    commands = []
    for e in calls(events, "sh"):
        arg = e["args"][0]
        script = arg["script"] if isinstance(arg, dict) else arg
        for part in script.replace("&&", ";").split(";"):
            words = shlex.split(part.split(">")[0])
            if words and words[0].endswith("bin/invoke"):
                commands.append(words[1:])
    return commands


def parser() -> Parser:
    sys.path.insert(0, str(ROOT))
    import tasks

    return Parser(contexts=tasks.ns.to_contexts())


def test_weekly_cron(events):
    [cron] = calls(events, "cron")
    minute, hour, dom, month, dow = cron["args"][0].split()
    assert (dom, month, dow) == ("*", "*", "1") and hour.startswith("H")


def test_every_sh_step_is_an_invoke_task_with_accepted_flags(events):
    commands = invoke_commands(events)
    assert len(commands) >= 6
    for argv in commands:
        parser().parse_argv(argv)  # ParseError on an unknown task or flag
    others = [e["args"][0] for e in calls(events, "sh") if "bin/invoke" not in json.dumps(e["args"])]
    assert others == ["./setup.sh"]  # the README's set-up, nothing else


def test_the_check_can_fail():
    with pytest.raises(ParseError):
        parser().parse_argv(["bake", "--all", "--colour", "red"])
    with pytest.raises(ParseError):
        parser().parse_argv(["deploy", "app"])


def test_post_always_runs_the_janitor_and_reconcile_and_publishes_the_evidence(events):
    always = invoke_commands([e for e in events if e["path"].startswith("pipeline/post/always")])
    assert [c[0] for c in always] == ["janitor", "catalog.reconcile"]  # SSM put right even after a failed stage
    assert always[1][1:] == always[0][1:]  # on the janitor's target
    [junit] = calls(events, "junit", "pipeline/post/always")
    assert junit["args"][0]["testResults"].endswith("junit.xml")
    [archive] = calls(events, "archiveArtifacts", "pipeline/post/always")
    for item in ("catalog.json", "report/", "logs"):
        assert item in archive["args"][0]["artifacts"]


def test_options_parameters_locks_and_credentials(events):
    for option in ("timestamps", "timeout", "disableConcurrentBuilds"):
        assert calls(events, option, "pipeline/options"), option
    names = {e["args"][0]["name"] for e in events if e["path"] == "pipeline/parameters"}
    assert names == {"IMAGES", "TARGET", "FORCE", "PROMOTE_TO", "JOBS"}
    [lock] = calls(events, "lock", "pipeline/stages/stage:Bake")
    assert {r["resource"] for r in lock["args"][0]["extra"]} <= {"kiln-image-base", "kiln-image-app"}
    bake = [e for e in calls(events, "sh", "pipeline/stages/stage:Bake") if "bake" in json.dumps(e["args"])]
    assert bake and all("withCredentials" in e["path"] and "lock" in e["path"] for e in bake)
    stages = [e["args"][0] for e in calls(events, "stage")]
    assert stages == ["Set-up", "Validate", "Plan", "Bake", "Promote", "Report"]


def test_the_bake_passes_the_jobs_parameter():
    for case in CASES:
        [bake] = [c for c in invoke_commands(record(case)) if c[0] == "bake"]
        assert bake[bake.index("--jobs") + 1] == case["JOBS"].strip()


def test_promote_stage_runs_only_with_a_channel():
    def promotes(params):
        return [c for c in invoke_commands(record(params)) if c[0] == "promote"]

    assert promotes(CASES[0]) == []
    assert promotes(CASES[1]) == [["promote", "base@latest", "--channel", "prod", "--target", "aws"],
                                  ["promote", "app@latest", "--channel", "prod", "--target", "aws"]]


def test_several_images_are_baked_and_promoted_in_one_run():
    commands = invoke_commands(record(CASES[3]))
    assert [c for c in commands if c[0] == "bake"] == [["bake", "base,app", "--target", "local", "--jobs", "2",
                                                        "--security-updates", "--force"]]
    assert [c for c in commands if c[0] == "promote"] == [
        ["promote", "base@latest", "--channel", "prod", "--target", "local"],
        ["promote", "app@latest", "--channel", "prod", "--target", "local"]]
