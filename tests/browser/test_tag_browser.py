"""The browser tag end to end in headless Chromium: page -> tag -> ingest -> Pub/Sub -> Graph.

A local page (its own HTTP server on 127.0.0.1, another port than the ingest, so every call
is cross-origin) loads /tag.js from a local stack whose ALLOWED_ORIGINS lists the page. Meta's
Pixel is a stub that records its calls. Nothing here reaches the internet.
"""

from __future__ import annotations

import hashlib
import http.server
import re
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from capi_relay_dev.localstack import LocalStack, free_port
from chromium import BASE_FLAGS, require_browser, start_driver
from waiting import wait_for

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
PAGE = Path(__file__).resolve().parent / "page.html"
ARTIFACTS = ROOT / "artifacts" / "browser"
#: a site name under a multi-label public suffix, resolved to the page server by Chromium
SHOP_HOST = "www.shop.example.co.uk"
CHROME_FLAGS = BASE_FLAGS + (
    # every name but the test shop fails to resolve: nothing can leave the machine
    f"--host-resolver-rules=MAP {SHOP_HOST} 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",)


class _PageHandler(http.server.BaseHTTPRequestHandler):
    html = b""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.split("?")[0] != "/":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.html)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(self.html)

    def log_message(self, format, *args) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The local stack (allowing the page's origin) and the page server in front of it."""
    from emulators import require_emulators

    require_emulators()
    require_browser()
    page_port = free_port()
    origin = f"http://127.0.0.1:{page_port}"
    shop_origin = f"http://{SHOP_HOST}:{page_port}"
    with LocalStack(log_dir=tmp_path_factory.mktemp("browser-stack-logs"),
                    extra_env={"ALLOWED_ORIGINS": f"{origin},{shop_origin}"}) as stack:
        handler = type("PageHandler", (_PageHandler,), {
            "html": PAGE.read_text().replace("__INGEST__", stack.ingest_url).encode()})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", page_port), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield SimpleNamespace(stack=stack, origin=origin, shop_origin=shop_origin)
        finally:
            server.shutdown()
            server.server_close()


@pytest.fixture
def browser(tmp_path):
    driver = start_driver(tmp_path / "chromium-profile", CHROME_FLAGS)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def accepted(stack, **match):
    return [e for e in stack.standin.accepted
            if all(e.get(k) == v for k, v in match.items())]


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path


def test_tag_sets_cookies_and_dedups_a_purchase_with_the_pixel(site, browser):
    stack, origin = site.stack, site.origin
    started_ms = int(time.time() * 1000)
    browser.get(f"{origin}/?fbclid=ABC")
    wait_for(lambda: browser.execute_script("return !!(window.capiRelay && capiRelay.loaded)"),
             10, "the tag to load")

    fbc = browser.get_cookie("_fbc")["value"]
    match = re.fullmatch(r"fb\.1\.(\d{13})\.ABC", fbc)
    assert match and started_ms - 1000 <= int(match.group(1)) <= int(time.time() * 1000)
    fbp = browser.get_cookie("_fbp")["value"]
    assert re.fullmatch(r"fb\.1\.\d{13}\.\d{10}", fbp)

    browser.find_element("id", "buy").click()
    calls = wait_for(lambda: browser.execute_script("return window.fbqCalls"), 5, "fbq")
    ((method, name, data, options),) = calls
    assert (method, name) == ("track", "Purchase")
    assert data["value"] == 9.99 and data["currency"] == "EUR"
    assert data["content_ids"] == ["SKU-1"]
    event_id = options["eventID"]
    assert event_id == browser.execute_script("return window.lastEventId")

    (sent,) = wait_for(lambda: accepted(stack, event_id=event_id), 30,
                       "the Purchase at the Graph stand-in")
    screenshot(browser, "tag-purchase.png")
    assert sent["event_name"] == "Purchase"
    assert sent["event_source_url"] == f"{origin}/?fbclid=ABC"
    assert sent["custom_data"]["value"] == 9.99
    user = sent["user_data"]
    assert user["fbc"] == fbc and user["fbp"] == fbp
    assert "HeadlessChrome" in user["client_user_agent"]
    assert re.fullmatch(r"[0-9a-f]{64}", user["em"][0])  # hashed by the relay

    # the same click again keeps the cookie as it is
    browser.get(f"{origin}/?fbclid=ABC")
    assert browser.get_cookie("_fbc")["value"] == fbc
    assert browser.get_cookie("_fbp")["value"] == fbp


def test_push_carries_the_merged_datalayer_state_as_gtm_sees_it(site, browser):
    """Issue 15 item 8: customer keys pushed before the event (GTM4WP, Magento) reach Meta."""
    stack, origin = site.stack, site.origin
    browser.get(f"{origin}/?datalayer=1")
    wait_for(lambda: browser.execute_script("return !!window.capiRelay"), 10, "the tag")
    browser.execute_script(
        "dataLayer.push({customerBillingPostcode: '10115', customerBillingCountry: 'DE'});"
        "window.lastEventId = capiRelay.push({event: 'purchase', ecommerce: {"
        "  transaction_id: 'DL-1', value: 5, items: [{item_id: 'SKU-9', price: 5}]}});")
    event_id = browser.execute_script("return window.lastEventId")
    (sent,) = wait_for(lambda: accepted(stack, event_id=event_id), 30, "the merged Purchase")
    user = sent["user_data"]
    assert {"em", "external_id", "ct", "zp", "country"} <= set(user)
    assert user["em"] == [hashlib.sha256(b"dl.jane@example.com").hexdigest()]
    assert user["zp"] == [hashlib.sha256(b"10115").hexdigest()]
    # ecommerce merged too: the currency came in the first push, the value in the event's
    assert sent["custom_data"]["currency"] == "EUR" and sent["custom_data"]["value"] == 5
    assert sent["custom_data"]["order_id"] == "DL-1"
    calls = browser.execute_script("return window.fbqCalls")
    assert calls[-1][1] == "Purchase" and calls[-1][2]["currency"] == "EUR"
    assert calls[-1][3] == {"eventID": event_id}


def test_consent_denied_sends_nothing(site, browser):
    stack, origin = site.stack, site.origin
    browser.get(f"{origin}/")
    wait_for(lambda: browser.execute_script("return !!window.capiRelay"), 10, "the tag")
    browser.execute_script("capiRelay.consent({ad_storage: 'granted', ad_user_data: 'denied'})")
    before = len(stack.standin.accepted)
    browser.find_element("id", "buy").click()
    assert browser.execute_script("return window.lastEventId") is None
    time.sleep(4)  # a sent event reaches the stand-in in about a second
    screenshot(browser, "tag-consent-denied.png")
    assert browser.execute_script("return window.fbqCalls") == []
    assert len(stack.standin.accepted) == before

    browser.execute_script("capiRelay.consent({ad_user_data: 'granted'})")
    browser.find_element("id", "buy").click()
    event_id = browser.execute_script("return window.lastEventId")
    (sent,) = wait_for(lambda: accepted(stack, event_id=event_id), 30, "the granted Purchase")
    assert len(stack.standin.accepted) == before + 1


def test_fetch_keepalive_when_there_is_no_beacon(site, browser):
    stack, origin = site.stack, site.origin
    browser.get(f"{origin}/?nobeacon=1")
    wait_for(lambda: browser.execute_script("return !!window.capiRelay"), 10, "the tag")
    assert browser.execute_script("return navigator.sendBeacon") is None
    browser.find_element("id", "buy").click()
    event_id = browser.execute_script("return window.lastEventId")
    wait_for(lambda: accepted(stack, event_id=event_id), 30, "the Purchase sent by fetch")


def test_collect_hits_work_cross_origin_with_credentials(site, browser):
    """What gtag.js does with server_container_url pointing at the relay."""
    stack, origin = site.stack, site.origin
    browser.get(f"{origin}/")
    location = f"{origin}/collect-check"
    status = browser.execute_async_script("""
        const [ingest, location, done] = arguments;
        const shared = 'v=2&tid=G-TEST123&cid=111.222&gcs=G111&dl=' +
            encodeURIComponent(location);
        fetch(ingest + '/g/collect?' + shared, {
            method: 'POST', credentials: 'include', mode: 'cors', keepalive: true,
            body: 'en=view_item&pr1=idSKU-1~nmTrail%20shoe~pr9.99~qt1\\n' +
                  'en=add_to_cart&epn.value=9.99&cu=EUR&pr1=idSKU-1~qt1'})
          .then(r => done(r.status), e => done('blocked: ' + e));
    """, stack.ingest_url, location)
    assert status == 204  # readable only when CORS allowed this origin with credentials
    sent = wait_for(lambda: accepted(stack, event_source_url=location), 30,
                    "the collect hits at the stand-in", )
    wait_for(lambda: len(accepted(stack, event_source_url=location)) == 2, 10, "both hits")
    names = sorted(e["event_name"] for e in accepted(stack, event_source_url=location))
    assert names == ["AddToCart", "ViewContent"] and sent


def test_fbc_goes_on_the_registrable_domain_and_ids_work_outside_secure_contexts(site, browser):
    """On www.shop.example.co.uk the cookie lands on example.co.uk (co.uk refuses it).

    Plain http on a name is not a secure context: crypto.randomUUID is missing there, so the
    event_id comes from the tag's fallback.
    """
    stack = site.stack
    browser.get(f"{site.shop_origin}/?fbclid=XYZ")
    wait_for(lambda: browser.execute_script("return !!window.capiRelay"), 10, "the tag")
    assert browser.execute_script("return window.isSecureContext") is False
    fbc = browser.get_cookie("_fbc")
    assert fbc["domain"] == ".example.co.uk" and fbc["value"].endswith(".XYZ")
    assert browser.get_cookie("_capi_probe") is None
    assert 89 * 86400 < fbc["expiry"] - time.time() <= 90 * 86400
    browser.find_element("id", "buy").click()
    event_id = browser.execute_script("return window.lastEventId")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        event_id)
    (sent,) = wait_for(lambda: accepted(stack, event_id=event_id), 30, "the Purchase")
    assert sent["user_data"]["fbc"] == fbc["value"]
