"""The command-line edge: the step hooks it turns on from the environment."""

import pytest
from invoke.exceptions import Exit

from pipeline import cli


def test_the_pause_hook_holds_only_the_named_step_of_the_named_image():
    said: list[str] = []

    class Reporter:
        def line(self, text: str) -> None:
            said.append(text)

    [hook] = cli.step_hooks({cli.PAUSE_ENV: "record:app", cli.PAUSE_SECONDS_ENV: "0.01"})
    hook("record", "base", Reporter())  # type: ignore[arg-type]
    hook("verify", "app", Reporter())  # type: ignore[arg-type]
    assert said == []
    hook("record", "app", Reporter())  # type: ignore[arg-type]
    assert said == [f"app: holding before record ({cli.PAUSE_ENV} is set)"]


def test_no_hook_unless_asked():
    assert cli.step_hooks({}) == ()


def test_the_crash_handler_saves_the_traceback_even_when_kiln_home_cannot_hold_it(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("KILN_HOME", str(tmp_path / "file"))
    monkeypatch.setattr(cli.tempfile, "tempdir", str(tmp_path))
    said = cli.save_traceback("Traceback: boom\n")
    assert said.startswith(f"traceback in {tmp_path}/kiln-debug-")
    assert (tmp_path / said.split("/")[-1]).read_text() == "Traceback: boom\n"
    monkeypatch.setattr(cli.tempfile, "tempdir", str(tmp_path / "file"))
    assert cli.save_traceback("x") == "traceback not saved: no writable folder"


def test_a_bad_variable_stops_a_task_before_its_work(monkeypatch, capsys):
    monkeypatch.setenv("KILN_ACCEL", "bogus")
    ran = []
    with pytest.raises(Exit) as stop:
        cli.guarded(lambda: ran.append(1))
    assert stop.value.code == 1 and ran == []
    assert capsys.readouterr().err == "kiln: error: KILN_ACCEL=bogus: invalid value — allowed: tcg, kvm\n"


def interrupted(**facts):
    exc = KeyboardInterrupt()
    for name, value in facts.items():
        setattr(exc, name, value)

    def work():
        raise exc

    return work


@pytest.mark.parametrize(("facts", "line"), [
    ({"where": "during build of app@2"}, "kiln: interrupted during build of app@2; cleaned up, nothing was recorded "
                                         "as verified"),
    ({"where": "during build of app@2", "verified": ("base@1",)},
     "kiln: interrupted during build of app@2; cleaned up, base@1 verified before the stop"),
])
def test_the_interrupt_line_names_what_this_run_verified(facts, line, capsys):
    with pytest.raises(Exit) as stop:
        cli.guarded(interrupted(**facts))
    assert stop.value.code == 130
    assert capsys.readouterr().err == line + "\n"
