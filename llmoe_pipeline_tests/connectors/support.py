"""A local HTTP server on 127.0.0.1 (http.server in a thread) that answers like a provider, and cassettes: recorded-
style interactions in each API's documented schema, keys scrubbed, replayed by matching path and query."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

CASSETTES = Path(__file__).parent / "cassettes"
SCRUBBED = {"api-key", "token"}  # query parameters that carry a key: never recorded, never matched
PAGING = {"page", "page_token"}  # a request for a later page matches only the interaction recorded for that page


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


Respond = Callable[[Request], tuple[int, Any]]


@dataclass
class LocalServer:
    url: str
    requests: list[Request] = field(default_factory=list)


@contextmanager
def local_server(respond: Respond) -> Iterator[LocalServer]:
    """Serve `respond(request) -> (status, JSON body)` until the block ends."""
    served = LocalServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            parts = urlsplit(self.path)
            request = Request(parts.path, dict(parse_qsl(parts.query)), {k.lower(): v for k, v in self.headers.items()})
            served.requests.append(request)
            status, body = respond(request)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


def cassette(name: str) -> list[dict]:
    return json.loads((CASSETTES / f"{name}.json").read_text())["interactions"]


def replay(*names: str) -> Respond:
    """Answer each request with the first recorded interaction whose path matches and whose recorded query is part
    of the request's, page included (scrubbed parameters ignored); anything unrecorded is a 404."""
    interactions = [i for name in names for i in cassette(name)]

    def respond(request: Request) -> tuple[int, Any]:
        asked = {k: v for k, v in request.query.items() if k not in SCRUBBED}
        for interaction in interactions:
            recorded = interaction["request"]
            wanted = recorded["query"]
            same_page = all(k in wanted for k in asked if k in PAGING)
            if recorded["path"] == request.path and same_page and {k: asked.get(k) for k in wanted} == wanted:
                return interaction["response"]["status"], interaction["response"]["body"]
        return 404, {"message": f"no recorded interaction for {request.path} {asked}"}

    return respond


def served_bodies(name: str, path: str) -> list[Any]:
    return [i["response"]["body"] for i in cassette(name) if i["request"]["path"] == path]
