"""The analyst page in headless Chromium against a real server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import MALICIOUS_IP, SUSPICIOUS_IP, ApiEnv

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and shutil.which("chromium") is None,
    reason="Debian's chromium is not installed (apt-get install chromium)",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def test_page_renders_verdicts(browser: object, live_url: str, live_env: ApiEnv) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(live_url + "/")
    page.fill("#api-key", live_env.key)
    page.fill("#indicators", f"{MALICIOUS_IP}\n{SUSPICIOUS_IP}\n999.1.1.1")
    page.click("#enrich")
    page.wait_for_selector("article.result >> nth=2")
    verdicts = page.locator(".verdict").all_text_contents()
    assert verdicts == ["malicious", "suspicious"]
    links = page.locator("table.sources a")
    assert links.count() > 0
    assert {links.nth(i).get_attribute("rel") for i in range(links.count())} == {
        "noopener noreferrer"
    }
    assert page.locator("article.invalid .error").text_content() == (
        "invalid indicator '999.1.1.1': octet '999' is greater than 255"
    )
    stored = page.evaluate("sessionStorage.getItem('iocscope.apiKey')")
    assert stored == live_env.key
    assert page.evaluate("localStorage.length") == 0
    assert errors == []
    page.close()


def test_page_shows_error_for_bad_key(browser: object, live_url: str) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(live_url + "/")
    page.fill("#api-key", "iocs_000000000000_wrong")
    page.fill("#indicators", MALICIOUS_IP)
    page.click("#enrich")
    status = page.locator("#status")
    status.filter(has_text="Request failed").wait_for()
    assert status.text_content() == "Request failed: 401: invalid or revoked API key"
    page.close()


def test_provider_text_is_not_html(browser: object, live_url: str, live_env: ApiEnv) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(live_url + "/")
    page.fill("#api-key", live_env.key)
    page.fill("#indicators", "<img/src=x/onerror=alert(1)>")
    page.click("#enrich")
    page.wait_for_selector("article.result")
    assert page.locator("article.result img").count() == 0
    assert page.locator("article.result h2").text_content() == "<img/src=x/onerror=alert(1)>"
    page.close()


def test_docs_page_stays_on_host(browser: object, live_url: str) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    requested: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    def record_console(message: object) -> None:
        # Chromium reports Content-Security-Policy violations as console errors.
        if message.type == "error":  # type: ignore[attr-defined]
            errors.append(message.text)  # type: ignore[attr-defined]

    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", record_console)
    page.goto(live_url + "/docs")
    page.wait_for_selector(".opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_text_contents()
    assert "/v1/ioc/enrich" in paths
    assert "/v1/sources" in paths
    assert live_url + "/docs/assets/swagger-ui-bundle.js" in requested
    assert live_url + "/openapi.json" in requested
    assert [url for url in requested if not url.startswith(live_url + "/")] == []
    assert live_url.startswith("http://127.0.0.1:")
    assert errors == []
    page.close()


def test_docs_try_it_out_with_key(browser: object, live_url: str, live_env: ApiEnv) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(live_url + "/docs")
    page.click("button.authorize")
    page.locator(".auth-container input").first.fill(live_env.key)
    page.locator(".auth-container button.authorize").first.click()
    page.click("button.btn-done")
    operation = page.locator(".opblock").filter(
        has=page.locator(".opblock-summary-path", has_text="/v1/sources")
    )
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status")
    status.wait_for()
    assert status.text_content() == "200"
    page.close()
