"""A fault-injecting HTTP proxy between boto3 (and Kiln's subprocesses) and the moto server.

Kiln is pointed at it with ``AWS_ENDPOINT_URL``; it forwards every request to
the emulator and, for a request matching a rule, does what the world does to
a real AWS call:

- ``drop``: forwards the request (the server applies it) and closes the
  connection without the reply — the lost reply a retry then meets;
- ``500`` / ``503``: answers a server error without forwarding;
- ``throttle``: answers 400 ``ThrottlingException`` without forwarding;
- ``latency``: waits ``seconds`` first, then forwards.

A rule matches a service (from the request's SigV4 scope), an operation (the
``X-Amz-Target`` of JSON APIs, the ``Action`` of query APIs such as EC2, or
S3's method and whether the path names an object) and optionally a region and
a substring of the path; it fires ``times`` times, then lets requests through.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


@dataclass
class Rule:
    """What to do to the requests that match, and how many times."""

    service: str
    operation: str
    fault: str  # drop, 500, 503, throttle, latency
    region: str = ""
    path: str = ""
    times: int = 1
    seconds: float = 0.0
    fired: int = 0

    def matches(self, service: str, operation: str, region: str, path: str) -> bool:
        """This request is one the rule is about, and the rule has not fired out."""
        return (self.fired < self.times and service == self.service and operation == self.operation
                and (not self.region or region == self.region) and self.path in path)


@dataclass
class Faults:
    """The rules in force, and what was seen (service, operation, region, what was done)."""

    rules: list[Rule] = field(default_factory=list)
    seen: list[tuple[str, str, str, str]] = field(default_factory=list)
    added: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, rule: Rule) -> None:
        """One more rule in force."""
        with self.lock:
            self.rules.append(rule)
            self.added += 1

    def decide(self, service: str, operation: str, region: str, path: str) -> Rule | None:
        """The rule that fires for this request (counted), if any."""
        with self.lock:
            for rule in self.rules:
                if rule.matches(service, operation, region, path):
                    rule.fired += 1
                    self.seen.append((service, operation, region, rule.fault))
                    return rule
            self.seen.append((service, operation, region, "passed"))
            return None

    def clear(self) -> None:
        """No rule any more (what was seen stays)."""
        with self.lock:
            self.rules.clear()


def operation_of(method: str, path: str, headers: dict[str, str], body: bytes, service: str) -> str:
    """The API operation a request calls."""
    if headers.get("x-amz-target"):
        return headers["x-amz-target"].rsplit(".", 1)[-1]
    if service == "s3":
        is_object = len([p for p in urllib.parse.urlsplit(path).path.split("/") if p]) >= 2
        return {"GET": "GetObject", "PUT": "PutObject", "DELETE": "DeleteObject", "HEAD": "HeadObject"}.get(
            method, method) if is_object else f"{method}Bucket"
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    form = urllib.parse.parse_qs(body.decode(errors="replace")) if body else {}
    return (form.get("Action") or query.get("Action") or [""])[0]


ERROR_SHAPES = {  # service → (reply template, content type), each in the protocol botocore parses for it
    "ssm": ('{{"__type":"{code}","message":"{message}"}}', "application/x-amz-json-1.1"),
    "s3": ("<Error><Code>{code}</Code><Message>{message}</Message><RequestId>fault</RequestId></Error>",
           "application/xml"),
    "ec2": ("<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            "<RequestID>fault</RequestID></Response>", "text/xml"),
}
QUERY_SHAPE = ("<ErrorResponse><Error><Code>{code}</Code><Message>{message}</Message></Error>"
               "<RequestId>fault</RequestId></ErrorResponse>", "text/xml")  # Auto Scaling, STS: the query APIs


def error_body(service: str, code: str, message: str) -> tuple[bytes, str]:
    """An error reply in the shape botocore parses for ``service`` (JSON, S3's XML, EC2's, the query APIs')."""
    template, kind = ERROR_SHAPES.get(service, QUERY_SHAPE)
    return template.format(code=code, message=message).encode(), kind


def handler(upstream: str, faults: Faults) -> type[BaseHTTPRequestHandler]:
    """A request handler forwarding to ``upstream`` (host:port) under ``faults``."""
    host, _, port = upstream.partition(":")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: object) -> None:
            """Quiet."""

        def handle_any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            scope = SCOPE.search(headers.get("authorization", ""))
            region, service = scope.groups() if scope else ("", "")
            rule = faults.decide(service, operation_of(self.command, self.path, headers, body, service), region,
                                 self.path)
            if rule is not None and rule.fault in ("500", "503", "throttle"):
                code = {"500": "InternalError", "503": "ServiceUnavailable"}.get(rule.fault, "ThrottlingException")
                status = 400 if rule.fault == "throttle" else int(rule.fault)
                return self.answer(status, *error_body(service, code, f"injected {rule.fault}"))
            if rule is not None and rule.fault == "latency":
                time.sleep(rule.seconds)
            conn = HTTPConnection(host, int(port), timeout=60)
            conn.request(self.command, self.path, body=body,
                         headers={k: v for k, v in self.headers.items() if k.lower() not in HOP})
            reply = conn.getresponse()
            data = reply.read()
            conn.close()
            if rule is not None and rule.fault == "drop":
                self.close_connection = True  # applied upstream; the client never hears of it
                return None
            self.send_response(reply.status)
            for key, value in reply.getheaders():
                if key.lower() not in HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None

        def answer(self, status: int, data: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any  # noqa: N815 - http.server names them

    return Handler


@contextmanager
def proxy(upstream_url: str) -> Iterator[tuple[str, Faults]]:
    """A proxy on 127.0.0.1 in front of ``upstream_url``: its URL, and the faults to set."""
    faults = Faults()
    upstream = urllib.parse.urlsplit(upstream_url).netloc
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(upstream, faults))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", faults
    finally:
        server.shutdown()
        server.server_close()
