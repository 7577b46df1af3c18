"""The API docs page driven in a real browser, as a person would use it.

Opens ``/docs`` on the gateway in headless Chromium (Debian's, through
Playwright; Playwright never downloads a browser here), then:

1. clicks "Authorize", enters the API key for the ``ApiKeyAuth`` scheme,
   authorizes and closes the dialog;
2. expands ``POST /api/v1/calculate-locate``, clicks "Try it out", enters
   the SPEC §5 worked example (AAPL, 100000, 30 days, the key's client) and
   clicks "Execute";
3. checks that the page shows the 200 and the ``total_fee`` of the worked
   example (58.75), and saves a screenshot of the page;
4. in a fresh browser context (no stored authorization), does the same
   without authorizing and checks that the page shows the 401.

Throughout, the page must not request anything from another origin (every
such request is blocked and reported), must raise no script error and must
trigger no Content-Security-Policy violation.

Usage::

    DOCS_API_KEY=brl_... python docs_page.py --base-url http://127.0.0.1:PORT \\
        --client-id test123 --screenshot docs/api-docs.png

Exits 0 when every check holds; otherwise prints what failed and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from decimal import Decimal
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
]

OPERATION_PATH = "/api/v1/calculate-locate"
EXPECTED_TOTAL_FEE = Decimal("58.75")
TIMEOUT_MS = 20_000


class Problems:
    """What went wrong in the browser, besides failed assertions."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.items: list[str] = []

    def watch(self, context: BrowserContext) -> None:
        def route(r):
            url = r.request.url
            if url.startswith(("data:", "blob:")) or _origin(url) == self.origin:
                r.continue_()
            else:
                self.items.append(f"request to another origin blocked: {url}")
                r.abort()

        context.route("**/*", route)

    def watch_page(self, page: Page) -> None:
        page.on("pageerror", lambda e: self.items.append(f"script error: {e}"))

        def console(msg) -> None:
            text = msg.text
            if "Content Security Policy" in text or "Refused to" in text:
                self.items.append(f"CSP violation: {text}")

        page.on("console", console)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def open_docs(context: BrowserContext, problems: Problems, base_url: str) -> Page:
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems.watch_page(page)
    response = page.goto(f"{base_url}/docs", wait_until="load")
    assert response is not None and response.status == 200, (
        f"GET /docs answered {response.status if response else 'nothing'}"
    )
    expect(page.locator(".swagger-ui .info .title")).to_contain_text(
        "Borrow Rate & Locate Fee API"
    )
    return page


def authorize(page: Page, api_key: str) -> None:
    page.locator(".auth-wrapper button.authorize").click()
    dialog = page.locator(".dialog-ux .modal-ux")
    expect(dialog).to_be_visible()
    scheme = dialog.locator(".auth-container").filter(has_text="ApiKeyAuth")
    scheme.locator("input").fill(api_key)
    scheme.locator("button.authorize").click()
    # Authorized: the form shows the scheme as authorized with a Logout button.
    expect(scheme.locator("button", has_text="Logout")).to_be_visible()
    scheme.locator("button.btn-done").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(".auth-wrapper button.authorize.locked")).to_be_visible()


def execute_calculation(page: Page, client_id: str) -> tuple[str, str]:
    """Expands the operation, tries it out; answers (status, response body)."""
    block = page.locator(".opblock.opblock-post").filter(
        has=page.locator(f'.opblock-summary-path[data-path="{OPERATION_PATH}"]')
    )
    expect(block).to_have_count(1)
    block.locator(".opblock-summary-control").click()
    block.locator("button.try-out__btn").click()
    body = {
        "ticker": "AAPL",
        "position_value": 100000,
        "loan_days": 30,
        "client_id": client_id,
    }
    block.locator("textarea.body-param__text").fill(json.dumps(body, indent=2))
    block.locator("button.execute").click()
    live = block.locator(".live-responses-table .response")
    expect(live).to_have_count(1)
    status = live.locator(".response-col_status").inner_text().strip()
    text = live.locator(".response-col_description pre").first.inner_text()
    live.scroll_into_view_if_needed()
    return status, text


def run(
    browser: Browser, problems: Problems, base_url: str, api_key: str, client_id: str, shot: str
) -> None:

    # With the key: 200 and the worked example's total fee.
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    problems.watch(context)
    page = open_docs(context, problems, base_url)
    authorize(page, api_key)
    status, text = execute_calculation(page, client_id)
    assert status == "200", f"with the key the page shows {status}: {text}"
    answer = json.loads(text)
    fee = answer.get("total_fee")
    assert fee is not None and Decimal(str(fee)) == EXPECTED_TOTAL_FEE, (
        f"total_fee shown is {fee!r}, expected {EXPECTED_TOTAL_FEE}: {text}"
    )
    print(f"authorized: {status}, total_fee {fee}")
    if shot:
        os.makedirs(os.path.dirname(os.path.abspath(shot)), exist_ok=True)
        # The curl command shows the key: blanked in the picture (in the
        # block's own colour).
        page.screenshot(path=shot, mask=[page.locator(".curl-command")], mask_color="#333333")
        print(f"screenshot: {shot}")
    context.close()

    # A fresh context: nothing stored, nothing authorized, 401 shown.
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    problems.watch(context)
    page = open_docs(context, problems, base_url)
    expect(page.locator(".auth-wrapper button.authorize.locked")).to_have_count(0)
    status, text = execute_calculation(page, client_id)
    assert status == "401", f"without the key the page shows {status}: {text}"
    assert json.loads(text)["error"]["code"] == "UNAUTHORIZED", text
    print(f"not authorized: {status}")
    context.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="the gateway, e.g. http://127.0.0.1:8000")
    parser.add_argument("--client-id", required=True, help="client id of the API key")
    parser.add_argument("--screenshot", default="", help="PNG written after the successful call")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    api_key = os.environ.get("DOCS_API_KEY", "")
    if not api_key:
        print("DOCS_API_KEY is not set", file=sys.stderr)
        return 2
    base_url = args.base_url.rstrip("/")
    expect.set_options(timeout=TIMEOUT_MS)
    problems = Problems(_origin(base_url))

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS
        )
        try:
            run(browser, problems, base_url, api_key, args.client_id, args.screenshot)
        except (AssertionError, PlaywrightError) as e:
            problems.items.insert(0, str(e))
        finally:
            browser.close()
    if problems.items:
        print("FAILED:\n  " + "\n  ".join(problems.items), file=sys.stderr)
        return 1
    print("docs page OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
