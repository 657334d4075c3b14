#!/usr/bin/env python3
"""Kiln's sample service: a tiny HTTP API that reports which image it runs on.

Standard library only, so the image needs nothing but python3. Configured from the
environment (systemd reads /etc/default/kiln-app); every setting has a default.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STARTED = time.time()


def read_release(path: str) -> dict[str, str]:
    """Parse a shell-style KEY=VALUE file such as /etc/image-release."""
    fields: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line or line.startswith("#") or "=" not in line:
                    continue
                key, _, value = line.partition("=")
                fields[key.strip()] = value.strip().strip('"')
    except OSError:
        pass
    return fields


def health(release_file: str, service: str) -> dict[str, object]:
    """The /health document: the service's state and the image it was baked into."""
    release = read_release(release_file)
    return {
        "status": "ok" if release else "degraded",
        "service": service,
        "image": {
            "name": release.get("IMAGE_NAME"),
            "version": release.get("IMAGE_VERSION"),
            "parent": release.get("IMAGE_PARENT"),
            "git_commit": release.get("GIT_COMMIT"),
        },
        "uptime_seconds": round(time.time() - STARTED, 1),
    }


def make_handler(release_file: str, service: str) -> type[BaseHTTPRequestHandler]:
    """A request handler bound to this process's configuration."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "kiln-app"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.split("?", 1)[0] == "/health":
                self._send(200, health(release_file, service))
            else:
                self._send(404, {"error": "not found", "path": self.path})

        def _send(self, code: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt: str, *args: object) -> None:
            sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

    return Handler


def main() -> int:
    """Serve until SIGTERM or SIGINT."""
    bind = os.environ.get("KILN_APP_BIND", "127.0.0.1")
    port = int(os.environ.get("KILN_APP_PORT", "8080"))
    release_file = os.environ.get("KILN_APP_RELEASE_FILE", "/etc/image-release")
    service = os.environ.get("KILN_APP_NAME", "kiln-app")
    server = ThreadingHTTPServer((bind, port), make_handler(release_file, service))

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    sys.stderr.write(f"{service} listening on {bind}:{server.server_address[1]}\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
