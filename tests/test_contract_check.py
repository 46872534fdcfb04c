"""The contract check shipped in checks/ (the one a user runs against a service): standalone, and it
fails loudly. That it passes against a real server is tests/test_e2e.py's first test."""

from __future__ import annotations

import ast
import http.server
import json
import socket
import subprocess
import sys
import threading

import pytest

from tests.conftest import CONTRACT_CHECK, ROOT


def run_check(url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CONTRACT_CHECK), "--url", url, "--platform-key", "p" * 16,
                           "--auditor-key", "a" * 16, "--timeout", "10"], capture_output=True, text=True, timeout=120)


def test_the_check_is_shipped_in_the_project_and_uses_the_standard_library_only():
    assert CONTRACT_CHECK == ROOT / "checks" / "contract_check.py" and CONTRACT_CHECK.exists()
    tree = ast.parse(CONTRACT_CHECK.read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported and imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


class _YesToEverything(http.server.BaseHTTPRequestHandler):
    """A service that answers every request 200 with an empty object, keys or not."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def yes_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _YesToEverything)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_service_that_breaks_the_contract_fails_the_check_and_says_where(yes_server):
    out = run_check(yes_server)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert "PASS GET /healthz answers 200 without a key" in lines
    assert "FAIL POST /v1/score without a key is 401: got 200" in lines
    assert "FAIL an illness_poverty score is returned: got []" in lines
    assert lines[-1].endswith(" failed") and not lines[-1].endswith(" 0 failed")


def test_a_service_that_cannot_be_reached_exits_2():
    with socket.socket() as s:  # a loopback port bound, then released: nobody listens there
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    out = run_check(url)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stdout.startswith(f"cannot reach the service: GET {url}/healthz")
