"""The command-line edge: the step hooks it turns on from the environment."""

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
