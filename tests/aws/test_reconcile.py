"""SSM derived from the catalog: a publish that failed, never ran or ran out of order is put right.

Faults are injected in-process in front of real boto3 clients talking HTTP to the
emulator (the same clients Kiln uses): SSM throttles one region, a process dies
between the catalog and SSM, another bake's ``latest`` lands mid-publish.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from pipeline.app import catalog as catalog_app
from pipeline.catalog import Artifact
from pipeline.errors import CloudError
from pipeline.targets.aws import mirror
from tests.aws.helpers import REGIONS, kiln_env

pytestmark = [pytest.mark.aws, pytest.mark.faults]
PROD = "/kiln/images/app/prod"


@pytest.fixture
def target(aws, tmp_path, monkeypatch):
    from pipeline.config import default_paths
    from pipeline.targets.aws import AwsTarget

    for key, value in kiln_env(tmp_path / "home").items():
        if key.startswith("KILN_"):
            monkeypatch.setenv(key, value)
    return AwsTarget(default_paths())


def verified(cat, tag: str) -> str:
    """A verified app version with an AMI in each region (``ami-0<tag><region>…``)."""
    v = cat.begin_bake(name="app", parent=None, fingerprint="sha256:" + tag * 64, git_commit="c", git_dirty=False,
                       run_id="r", log_dir="/l")
    for region in REGIONS:
        cat.add_artifact("app", v, Artifact(target="aws", id=ami(tag, region), region=region))
    cat.set_status("app", v, "verified")
    return v


def ami(tag: str, region: str) -> str:
    return f"ami-0{tag}{region[:2]}{'0' * 13}"


def ssm_value(region: str, name: str) -> str | None:
    client = boto3.client("ssm", region_name=region)
    try:
        return client.get_parameter(Name=name)["Parameter"]["Value"]
    except client.exceptions.ParameterNotFound:
        return None


def throttle(target, region: str):
    """SSM in ``region`` throttles every PutParameter until the returned function is called."""
    def refuse(**_kwargs):
        raise ClientError({"Error": {"Code": "ThrottlingException"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
                          "PutParameter")

    events = target.account.client("ssm", region).meta.events
    events.register("before-call.ssm.PutParameter", refuse)
    return lambda: events.unregister("before-call.ssm.PutParameter", refuse)


def test_a_promote_throttled_in_the_second_region_stays_pending_until_reconcile_finishes_it(target):
    with target.open_catalog() as cat:
        v = verified(cat, "a")
        assert set(cat.pending()) == {"app"}  # latest moved: marked in the move's own write
        target.publish(cat, ["app"])
        assert cat.pending() == {} and {ssm_value(r, "/kiln/images/app/latest") for r in REGIONS} == \
            {ami("a", r) for r in REGIONS}
        stop = throttle(target, "us-east-1")  # eu-west-1 lands first, then us-east-1 throttles
        move = cat.promote("app", v, "prod")
        with pytest.raises(CloudError) as failed:
            catalog_app.published(target, cat, [move])
        stop()
        error = failed.value
        assert "ThrottlingException" in error.message and "the catalog moved (channel prod of app" in error.message
        assert "invoke catalog.reconcile --target aws" in error.hint
        assert cat.channel("app", "prod") == v and set(cat.pending()) == {"app"}
        assert [ssm_value(r, PROD) for r in REGIONS] == [None, None]  # eu-west-1 put back: regions agree

        planned = target.publish(cat, None, dry_run=True)
        assert planned == [f"ssm: would put {PROD} → eu-west-1:{ami('a', 'eu-west-1')}, us-east-1:"
                           f"{ami('a', 'us-east-1')} (was eu-west-1:absent, us-east-1:absent)"]
        assert ssm_value("us-east-1", PROD) is None and set(cat.pending()) == {"app"}  # a dry run changes nothing

        assert catalog_app.reconcile("aws", dry_run=False)[0].startswith(f"ssm: {PROD} → ")
        assert [ssm_value(r, PROD) for r in REGIONS] == [ami("a", r) for r in REGIONS] and cat.pending() == {}
        assert catalog_app.reconcile("aws") == ["aws: every channel is where the catalog says"]


def test_a_process_killed_between_the_catalog_and_ssm_is_finished_by_the_next_command_on_the_image(target):
    with target.open_catalog() as cat:
        v = verified(cat, "b")
        target.publish(cat, ["app"])
        cat.promote("app", v, "prod")  # ...and the process is SIGKILLed before it publishes
    with target.open_catalog() as cat:  # another process, later
        assert set(cat.pending()) == {"app"} and ssm_value("us-east-1", PROD) is None
        staging = cat.promote("app", v, "staging")
        lines = catalog_app.published(target, cat, [staging])
        assert [line.split(" → ")[0] for line in lines] == ["ssm: /kiln/images/app/prod",
                                                             "ssm: /kiln/images/app/staging"]
        assert ssm_value("eu-west-1", PROD) == ami("b", "eu-west-1") and cat.pending() == {}


def test_latest_published_out_of_order_ends_where_the_catalog_says(target, monkeypatch):
    """Bake A reads the catalog to publish; bake B's newer version lands and publishes; A's write comes last."""
    with target.open_catalog() as cat:
        older = verified(cat, "c")
        newer = {}
        real = mirror.existing

        def b_lands_meanwhile(account):
            if not newer:
                newer["v"] = verified(cat, "d")
                target.publish(cat, ["app"])
            return real(account)

        monkeypatch.setattr(mirror, "existing", b_lands_meanwhile)
        target.publish(cat, ["app"])  # A: wanted `older`, wrote it after B wrote `newer`, then went again
        assert cat.channel("app", "latest") == newer["v"] != older
        assert [ssm_value(r, "/kiln/images/app/latest") for r in REGIONS] == [ami("d", r) for r in REGIONS]
        assert cat.pending() == {}


def test_reconcile_leaves_parameters_the_catalog_never_had(target):
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name="/kiln/images/other/prod", Value="ami-0123456789abcdef0", Type="String", DataType="aws:ec2:image")
    with target.open_catalog() as cat:
        verified(cat, "e")
    lines = catalog_app.reconcile("aws")
    assert "ssm: /kiln/images/other/prod is not a channel in the catalog: left as it is" in lines
    assert ssm_value("us-east-1", "/kiln/images/other/prod") == "ami-0123456789abcdef0"
    assert ssm_value("us-east-1", "/kiln/images/app/latest") == ami("e", "us-east-1")


def test_a_catalog_object_deleted_by_hand_is_restored_by_import_and_ssm_follows(target, tmp_path):
    """The S3 document deleted (every command now refuses it); ``catalog.import`` of the last export brings
    every version and channel back, marks every image pending, and reconcile puts SSM where it says."""
    from pipeline.catalog import dumps

    with target.open_catalog() as cat:
        v = verified(cat, "a")
        cat.promote("app", v, "prod")
        target.publish(cat, ["app"])
        saved = cat.export()
    export = tmp_path / "before.json"
    export.write_text(dumps(saved))
    boto3.client("ssm", region_name=REGIONS[1]).delete_parameter(Name=PROD)  # drifted meanwhile
    boto3.client("s3", region_name="us-east-1").delete_object(Bucket="kiln-catalog", Key="kiln/catalog.json")
    lines = catalog_app.import_export(export, "aws")
    assert lines == ["imported 1 version(s) of 1 image(s) into s3://kiln-catalog/kiln/catalog.json",
                     "every image is marked publish pending: invoke catalog.reconcile --target aws"]
    assert catalog_app.export("aws") == saved
    catalog_app.reconcile("aws")
    assert {ssm_value(r, PROD) for r in REGIONS} == {ami("a", r) for r in REGIONS}
    with target.open_catalog(create=False) as cat:
        assert cat.pending() == {}
