"""The fault tests use the same emulated AWS account as the aws tests."""

from tests.aws.conftest import aws, moto_url  # noqa: F401 - fixtures shared with tests/aws
