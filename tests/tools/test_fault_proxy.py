"""The fault proxy's replies are errors botocore reads as the code they name, and it names each request's
operation as botocore's clients call it — else a rule would never fire, or fire as the wrong error."""

from __future__ import annotations

import json

import botocore.session
import pytest
from botocore import parsers

from tools.faults.proxy import error_body, operation_of

CASES = [("ssm", "PutParameter", "ThrottlingException"), ("s3", "PutObject", "InternalError"),
         ("ec2", "DescribeImages", "RequestLimitExceeded"), ("autoscaling", "DescribeLaunchConfigurations",
                                                             "Throttling")]


@pytest.mark.parametrize(("service", "operation", "code"), CASES)
def test_an_error_reply_parses_as_its_code_in_the_services_protocol(service: str, operation: str,
                                                                    code: str) -> None:
    model = botocore.session.get_session().get_service_model(service)
    body, kind = error_body(service, code, "injected")
    reply = {"status_code": 503, "headers": {"content-type": kind}, "body": body}
    parsed = parsers.create_parser(model.metadata["protocol"]).parse(
        reply, model.operation_model(operation).output_shape)
    assert parsed["Error"]["Code"] == code
    assert parsed["Error"]["Message"] == "injected"


def test_operations_are_named_from_the_target_header_the_path_or_the_form() -> None:
    assert operation_of("POST", "/", {"x-amz-target": "AmazonSSM.GetParameter"}, b"{}", "ssm") == "GetParameter"
    assert operation_of("PUT", "/bucket/kiln/catalog.json", {}, b"{}", "s3") == "PutObject"
    assert operation_of("GET", "/bucket?list-type=2", {}, b"", "s3") == "GETBucket"
    assert operation_of("POST", "/", {}, b"Action=DescribeImages&Version=2016-11-15", "ec2") == "DescribeImages"
    assert operation_of("GET", "/?Action=CopyImage", {}, b"", "ec2") == "CopyImage"
    assert json.loads(error_body("ssm", "X", "m")[0]) == {"__type": "X", "message": "m"}
