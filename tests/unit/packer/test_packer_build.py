"""A layer built with Packer: the telling lines of its log, and the variables every Packer builder passes."""


from pipeline.packer import build as packer_build


def test_last_activity_and_failure_line_from_packer_log(tmp_path):
    log = tmp_path / "packer.log"
    log.write_text(
        "2026-11-27T14:25:47Z: ==> qemu.image: Waiting for SSH to become available...\n"
        "2026-11-27T14:25:49Z:     qemu.image: TASK [chrony : Install chrony] *****\n"
        "2026-11-27T14:25:50Z:     qemu.image: fatal: [default]: FAILED! => {\"msg\": \"No package chrony\"}\n"
        "2026-11-27T14:25:51Z: Build 'qemu.image' errored after 49 seconds: Error executing Ansible\n")
    assert packer_build.last_activity(log) == "(chrony : Install chrony)"
    assert packer_build.failure(log) == "task [chrony : Install chrony] failed"
    log.write_text("2026-11-27T14:25:47Z: ==> qemu.image: Waiting for SSH to become available...\n")
    assert packer_build.last_activity(log) == "(Waiting for SSH to become available...)"
    assert packer_build.last_activity(tmp_path / "none") == ""


def test_bake_plan_matches_template(root, tmp_path):
    from pipeline import config
    from pipeline.bake.inputs import Inputs
    from pipeline.bake.layer import Layer, Source
    from pipeline.bake.run import Git, Run
    from pipeline.packer import templates
    from pipeline.targets.local import LocalTarget
    from pipeline.targets.local.packer_qemu import PackerQemu, packer_variables
    from pipeline.verify import seed

    project = config.load(root)
    paths = config.Paths(project=root, home=tmp_path, cache=tmp_path)
    run = Run(paths=paths, project=project, catalog=None, reporter=None, target=LocalTarget(paths),  # type: ignore[arg-type]
              builders={"app": PackerQemu(None)}, git=Git("abc", False), run_id="r", tool_values={})
    layer = Layer(spec=project.get("app"), version="2026.1127.141438", source=Source(None, "/s/base.qcow2", "base@1"),
                  inputs=Inputs({}, {}), log_dir=tmp_path, scratch=tmp_path / "s", git=Git("abc", False))
    access = seed.Access(user="packer", key=tmp_path / "k", seed_files=(tmp_path / "user-data",))
    planned = packer_variables(run, layer, access)
    templates.check_plan(root / "packer" / "image", planned)
    assert planned["image_name"] == "app"
    assert '"kiln_image_parent": "base@1"' in planned["ansible_extra_vars"]
