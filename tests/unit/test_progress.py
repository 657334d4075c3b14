from pipeline import progress


def test_fmt_seconds():
    assert progress.fmt_seconds(4.21) == "4.2s"
    assert progress.fmt_seconds(185) == "3m05s"


def test_summary_table():
    out = progress.table([progress.Row("base", "2026.1127.141438", "verified", 190.0, "/s/base.qcow2"),
                          progress.Row("app", "2026.1127.142000", "failed", 61.5, "")])
    lines = out.splitlines()
    assert lines[0].split() == ["IMAGE", "VERSION", "STATUS", "DURATION", "ARTIFACT"]
    assert lines[1].split() == ["base", "2026.1127.141438", "verified", "3m10s", "/s/base.qcow2"]
    assert lines[2].split() == ["app", "2026.1127.142000", "failed", "1m02s"]


def test_reporter_writes_stream_and_log(tmp_path):
    import io

    stream = io.StringIO()
    rep = progress.Reporter(stream=stream, log=tmp_path / "bake.log")
    rep.line("base: build …")
    assert "base: build …" in stream.getvalue()
    assert "base: build …" in (tmp_path / "bake.log").read_text()


def test_colour_only_on_a_terminal(tmp_path, monkeypatch):
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    tty, pipe = Tty(), io.StringIO()
    progress.Reporter(stream=tty, log=tmp_path / "a.log").say("base: build done")
    progress.Reporter(stream=pipe).say("base: build done")
    assert "\033[32mdone\033[0m" in tty.getvalue() and "\033[" not in pipe.getvalue()
    assert "\033[" not in (tmp_path / "a.log").read_text()
    monkeypatch.setenv("NO_COLOR", "1")
    quiet = Tty()
    progress.Reporter(stream=quiet).say("done")
    assert "\033[" not in quiet.getvalue()
