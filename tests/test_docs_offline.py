"""The API docs pages render in Chromium with every request that would leave the host blocked: their
scripts and styles come from the service itself (serving/docs.py), not from a CDN."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from tests.test_ui import CHROMIUM, CHROMIUM_ARGS, _playwright

pytestmark = pytest.mark.slow


def test_docs_render_offline(live_server):
    sync_playwright = _playwright()
    url = live_server["url"]
    host = urlparse(url).netloc
    blocked: list[str] = []
    errors: list[str] = []

    def only_this_host(route, request) -> None:
        if urlparse(request.url).netloc == host or request.url.startswith("data:"):
            route.continue_()
        else:
            blocked.append(request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            ctx.route("**/*", only_this_host)
            page = ctx.new_page()
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda e: errors.append(str(e)))

            page.goto(f"{url}/docs")
            page.wait_for_selector(".swagger-ui .info .title")
            assert "relief-risk" in page.locator(".swagger-ui .info .title").inner_text()
            page.wait_for_selector(".opblock")
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            assert any("/v1/score" in t for t in paths) and any("/v1/access" in t for t in paths)

            page.goto(f"{url}/redoc")
            page.wait_for_selector("h1")
            assert "relief-risk" in page.locator("h1").first.inner_text()
            assert page.get_by_text("/v1/households/{household_id}").first.count() == 1
        finally:
            browser.close()
    assert blocked == [], f"the docs pages asked for outside resources: {blocked}"
    assert errors == [], errors
