"""Measure cached lookups through ``POST /v1/ioc/enrich`` on a real server.

Run: ``.venv/bin/python bench/api_lookup.py [REQUESTS] [CLIENTS]``.

The script builds a temporary data directory with a small IPsum feed and
starts ``iocscope serve``'s app on 127.0.0.1 in a child process. The
keyless InternetDB source points at a stub server in this process, and one
lookup per address warms the cache. It then sends REQUESTS
lookups (default 2000) of the warmed addresses from CLIENTS concurrent
keep-alive clients (default 4), and as many ``GET /healthz`` requests as a
baseline: the cost of HTTP, routing and middleware without the engine.
It prints both rates and their ratio, because absolute rates depend on the
machine. Not part of the test suite.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from iocscope.api.app import build_server, create_app
from iocscope.api.auth import add_key
from iocscope.api.settings import ApiSettings
from iocscope.config import settings_from_mapping
from iocscope.sources.contract import SourceKind
from iocscope.sources.feeds.store import import_feed
from iocscope.sources.registry import catalogue

DEFAULT_REQUESTS = 2000
DEFAULT_CLIENTS = 4
ADDRESSES = [f"185.220.{third}.{fourth}" for third in range(100, 104) for fourth in range(1, 26)]
STARTUP_TIMEOUT = 30.0


class _InternetDbStub(BaseHTTPRequestHandler):
    """Return an empty InternetDB record for every address."""

    def do_GET(self) -> None:
        body = b'{"ip": "%s", "ports": [], "hostnames": [], "tags": []}' % self.path[1:].encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(raw_settings: dict[str, Any], port: int) -> None:
    """Run the app in the child process until it is terminated."""
    settings = settings_from_mapping(raw_settings)
    api = ApiSettings(rate_per_minute=1e9, rate_burst=1_000_000_000)
    build_server(create_app(settings, api), "127.0.0.1", port, log_level="warning").run()


def prepare(data_dir: Path, stub_url: str) -> tuple[dict[str, Any], str]:
    feed = data_dir.parent / "ipsum.txt"
    lines = [f"{address}\t{1 + index % 9}" for index, address in enumerate(ADDRESSES[::2])]
    feed.write_text("\n".join(lines) + "\n")
    import_feed(data_dir, "ipsum", feed)
    # Only the feeds and InternetDB (pointed at the stub) are on, so nothing leaves the host.
    sources: dict[str, Any] = {
        entry.meta.name: {"enabled": False}
        for entry in catalogue()
        if entry.meta.kind is not SourceKind.FEED
    }
    sources["internetdb"] = {"base_url": stub_url}
    raw = {"data_dir": str(data_dir), "sources": sources}
    key = add_key(data_dir / "api-keys.json", "bench").plaintext
    return raw, key


def wait_until_up(base_url: str, process: multiprocessing.process.BaseProcess) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if not process.is_alive():
            raise SystemExit("the server process exited during startup")
        try:
            httpx.get(f"{base_url}/healthz", timeout=1.0)
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        return
    raise SystemExit("the server did not start")


async def run_clients(base_url: str, key: str, requests: int, clients: int, enrich: bool) -> float:
    """Send ``requests`` requests from ``clients`` clients; return requests per second."""
    per_client = requests // clients

    async def one_client(offset: int) -> None:
        headers = {"X-API-Key": key}
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as http:
            for number in range(per_client):
                if enrich:
                    address = ADDRESSES[(offset + number) % len(ADDRESSES)]
                    response = await http.post("/v1/ioc/enrich", json={"value": address})
                else:
                    response = await http.get("/healthz")
                response.raise_for_status()

    started = time.perf_counter()
    await asyncio.gather(*(one_client(index * 7) for index in range(clients)))
    return per_client * clients / (time.perf_counter() - started)


async def warm(base_url: str, key: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, headers={"X-API-Key": key}) as http:
        for address in ADDRESSES:
            (await http.post("/v1/ioc/enrich", json={"value": address})).raise_for_status()
        # Warm the plain HTTP path as well, so the baseline that runs first is not penalised.
        for _ in range(len(ADDRESSES)):
            (await http.get("/healthz")).raise_for_status()
        check = await http.post("/v1/ioc/enrich", json={"value": ADDRESSES[0]})
        if check.json()["cached"] != ["internetdb"]:
            raise SystemExit(f"the cache is not warm: {check.json()['cached']}")


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_REQUESTS
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_CLIENTS
    stub = ThreadingHTTPServer(("127.0.0.1", 0), _InternetDbStub)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    stub_url = f"http://127.0.0.1:{stub.server_address[1]}"
    with tempfile.TemporaryDirectory(prefix="iocscope-bench-") as temporary:
        raw, key = prepare(Path(temporary) / "data", stub_url)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        process = multiprocessing.get_context("spawn").Process(target=serve, args=(raw, port))
        process.start()
        try:
            wait_until_up(base_url, process)
            asyncio.run(warm(base_url, key))
            baseline = asyncio.run(run_clients(base_url, key, requests, clients, enrich=False))
            lookups = asyncio.run(run_clients(base_url, key, requests, clients, enrich=True))
        finally:
            process.terminate()
            process.join(timeout=10)
            stub.shutdown()
    print(f"requests: {requests} per endpoint, clients: {clients}, server: one uvicorn process")
    print(f"GET /healthz (baseline):        {baseline:8.0f} requests/s")
    print(f"POST /v1/ioc/enrich (cached):   {lookups:8.0f} requests/s")
    print(f"cached lookup / baseline:       {lookups / baseline:8.2f}")


if __name__ == "__main__":
    main()
