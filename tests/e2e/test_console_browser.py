"""The console in a real browser: Debian's Chromium, headless, driven by Playwright, against the local
topology (gateway, two real FDK instances, Tansu). Writes through the page are seen through the API
and the reverse; a stale edit is refused with its message; hostile keys and values stay text; an API
key is asked for and never put in a URL. Screenshots of each view go to .artifacts/screenshots/."""

from __future__ import annotations

import itertools
import shutil
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from streamcache.auth import hash_key
from streamcache_local.dev import DevStack
from streamcache_local.pool import Dispatch
from support.gateway import request
from support.waiting import wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium tries Google's hosts at every start; the machine's
# closed network refuses them (noise, and slow). --no-sandbox: CI runs as root.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).resolve().parents[2] / ".artifacts" / "screenshots"
_topics = itertools.count()
# Chromium logs every 4xx answer as an error; the page shows those itself (a 412 is a stale edit).
# Script errors and policy violations ("Refused to ...") are the page's own failures.
ANSWERED_4XX = "Failed to load resource: the server responded with a status of 4"


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield chromium
        chromium.close()


def _stack(broker, **config: str) -> DevStack:
    # An open page's long poll holds one instance (on OCI, Functions starts another container; the
    # local stack has a fixed pool): three leave room for the page's own calls and the test's.
    topic = f"console-{next(_topics)}-{uuid.uuid4().hex[:6]}"
    broker.create_topic(topic, 3)
    return DevStack(port=0, instances=3, dispatch=Dispatch.ROUND_ROBIN, log_url=broker.log_url(topic),
                    config=config or None)


@pytest.fixture(scope="module")
def stack(broker):
    with _stack(broker) as running:
        yield running


@pytest.fixture(scope="module")
def open_page(browser: Browser, stack):
    """One page for the module, as a user keeps one tab open: each new page would start a long poll."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" and not
            message.text.startswith(ANSWERED_4XX) else None)
    page.goto(f"{stack.url}/console")
    expect(page.locator("body")).to_have_attribute("data-following", "true")  # the live feed has its token
    yield page, errors
    context.close()


@pytest.fixture
def page(open_page):
    page, errors = open_page
    yield page
    assert not errors, errors  # nothing the page did failed or was refused by the policy


def put(stack, key: str, value: bytes, content_type: str = "text/plain") -> int:
    return request(stack, "PUT", f"/cache/{key}", value, {"Content-Type": content_type})[0]


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def test_the_page_is_served_by_the_function_under_a_strict_policy(stack):
    status, headers, body = request(stack, "GET", "/console")
    assert status == 200 and headers["content-type"].startswith("text/html")
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert b"<script>" not in body and b"http" not in body.split(b"<body>")[1]  # no inline script, nothing foreign


def test_a_key_written_through_the_page_is_read_through_the_api(page: Page, stack):
    key = f"page/{uuid.uuid4().hex[:8]}"
    page.get_by_role("button", name="New key").click()
    page.locator("#edit-key").fill(key)
    page.locator("#edit-value").fill('{"name": "Ada"}')
    page.locator("#edit-type").fill("application/json")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#status")).to_have_text(f"saved {key}")
    status, headers, body = request(stack, "GET", f"/cache/{key}")
    assert (status, body, headers["content-type"]) == (200, b'{"name": "Ada"}', "application/json")
    page.locator("#view-as").select_option("json")
    expect(page.locator("#value-view")).to_have_text('{\n  "name": "Ada"\n}')
    shot(page, "value")


def test_keys_by_prefix_with_paging(page: Page, stack):
    prefix = f"many{uuid.uuid4().hex[:6]}/"
    for i in range(60):
        assert put(stack, f"{prefix}{i:03d}", b"v") == 201
    page.locator("#prefix").fill(prefix)
    page.get_by_role("button", name="List").click()
    expect(page.locator("#key-list li")).to_have_count(50)
    page.get_by_role("button", name="More keys").click()
    expect(page.locator("#key-list li")).to_have_count(60)
    expect(page.get_by_role("button", name="More keys")).to_be_hidden()
    shot(page, "keys")


def test_a_write_through_the_api_appears_in_the_live_panel(page: Page, stack):
    key = f"live/{uuid.uuid4().hex[:8]}"
    assert put(stack, key, b"1") == 201
    expect(page.locator("#change-list li").filter(has_text=key)).to_have_count(1)
    expect(page.locator("#change-list li").filter(has_text=key)).to_contain_text("put")
    shot(page, "changes")


def test_pausing_the_live_panel_holds_changes_back_until_resumed(page: Page, stack):
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("button", name="Resume")).to_have_attribute("aria-pressed", "true")
    key = f"paused/{uuid.uuid4().hex[:8]}"
    assert put(stack, key, b"1") == 201
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#change-list li").filter(has_text=key)).to_have_count(1)


def test_a_stale_edit_is_refused_with_a_clear_message(page: Page, stack):
    key = f"stale/{uuid.uuid4().hex[:8]}"
    assert put(stack, key, b"first") == 201
    page.locator("#prefix").fill(key)
    page.get_by_role("button", name="List").click()
    page.get_by_role("button", name=key).click()
    expect(page.locator("#value-view")).to_have_text("first")
    assert put(stack, key, b"someone else") == 200
    page.locator("#edit-value").fill("mine")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#item-error")).to_contain_text("changed since you opened it")
    # A strong read: a plain one may meet an instance that has not caught up yet (up to 1 s stale).
    assert request(stack, "GET", f"/cache/{key}?consistency=strong")[2] == b"someone else"
    shot(page, "stale-edit")


def test_counters_increment_from_the_page(page: Page, stack):
    key = f"counter/{uuid.uuid4().hex[:8]}"
    page.get_by_role("button", name="New key").click()
    page.locator("#edit-key").fill(key)
    page.locator("#by").fill("5")
    page.get_by_role("button", name="Increment").click()
    expect(page.locator("#status")).to_have_text(f"{key} = 5")
    page.get_by_role("button", name="Increment").click()
    expect(page.locator("#status")).to_have_text(f"{key} = 10")
    assert request(stack, "GET", f"/cache/{key}?consistency=strong")[2] == b"10"  # see the stale edit's test


@pytest.mark.parametrize("hostile", ["<script>window.__pwned = 1</script>", "<img src=x onerror=\"window.__pwned = 1\">"])
def test_hostile_keys_and_values_are_shown_as_text_and_run_nothing(page: Page, stack, hostile):
    key = f"xss/{uuid.uuid4().hex[:6]}/{hostile}"
    status, _, _ = request(stack, "PUT", "/cache?key=" + __import__("urllib.parse").parse.quote(key, safe=""),
                           hostile.encode(), {"Content-Type": "text/html"})
    assert status == 201
    expect(page.locator("#change-list li").filter(has_text=hostile)).to_have_count(1)
    page.locator("#prefix").fill(key)
    page.get_by_role("button", name="List").click()
    page.get_by_role("button", name=key).click()
    expect(page.locator("#value-view")).to_have_text(hostile)
    assert page.locator("#item img, #keys img, #changes img, main script").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_the_instance_panel_shows_health_and_a_chart(page: Page):
    expect(page.locator("#health-list")).to_contain_text("serving")
    expect(page.locator("#health-list")).to_contain_text("cold_start_ms")
    expect(page.locator("#lag-line")).not_to_have_attribute("points", "")
    shot(page, "instance")


def test_a_value_larger_than_the_page_is_truncated_with_a_download(page: Page, stack):
    key = f"big/{uuid.uuid4().hex[:8]}"
    assert put(stack, key, b"x" * 200_000) == 201
    page.locator("#prefix").fill(key)
    page.get_by_role("button", name="List").click()
    page.get_by_role("button", name=key).click()
    expect(page.locator("#truncated")).to_be_visible()
    with page.expect_download() as download:
        page.locator("#download").click()
    assert Path(download.value.path()).stat().st_size == 200_000


def test_the_page_works_at_phone_width_and_by_keyboard(browser: Browser, stack):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(f"{stack.url}/console")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    page.locator("#prefix").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "List"
    shot(page, "phone")
    context.close()


def test_with_api_keys_the_page_asks_for_one_and_keeps_it_out_of_urls(browser: Browser, broker):
    secret = "sck_console-writer"
    with _stack(broker, STREAMCACHE_API_KEYS=hash_key(secret)) as keyed:
        context = browser.new_context()
        page = context.new_page()
        urls: list[str] = []
        page.on("request", lambda r: urls.append(r.url))
        # The live feed's first call, sent without a key, is held until the key has been entered: its
        # 401 then answers a request the key did not go with, which must not ask for the key again.
        held: list = []
        page.route(lambda url: "/changes?" in url,
                   lambda route: route.continue_() if "x-api-key" in route.request.headers else held.append(route))
        page.goto(f"{keyed.url}/console")
        expect(page.locator("#key-form")).to_be_visible()  # the page loads; the cache answers 401
        page.locator("#api-key").fill(secret)
        page.get_by_role("button", name="Use key").click()
        expect(page.locator("#key-form")).to_be_hidden()
        wait_for(lambda: held or page.wait_for_timeout(50), 10, "the feed's first call")
        held[0].continue_()
        expect(page.locator("body")).to_have_attribute("data-following", "true")  # the feed got through
        assert page.locator("#key-form").is_hidden()
        expect(page.locator("#health-list")).to_contain_text("serving")
        page.get_by_role("button", name="New key").click()
        page.locator("#edit-key").fill("keyed")
        page.locator("#edit-value").fill("ok")
        page.get_by_role("button", name="Save").click()
        expect(page.locator("#status")).to_have_text("saved keyed")
        assert page.evaluate("sessionStorage.getItem('streamcache-api-key')") == secret
        assert page.evaluate("localStorage.length") == 0 and page.context.cookies() == []
        assert urls and not any(secret in url for url in urls)
        context.close()


def test_the_fleet_panel_shows_the_local_metrics_and_the_alarms(browser: Browser, broker):
    topic = f"console-metrics-{uuid.uuid4().hex[:6]}"
    broker.create_topic(topic, 3)
    with DevStack(port=0, instances=3, dispatch=Dispatch.ROUND_ROBIN, log_url=broker.log_url(topic), metrics=True,
                  config={"STREAMCACHE_METRICS_INTERVAL_S": "1"}) as metered:
        assert put(metered, "seen", b"1") == 201
        assert request(metered, "GET", "/cache/seen")[0] == 200
        wait_for(lambda: request(metered, "GET", "/health") and metered.monitoring.received("CacheHits"), 20,
                 "a posted hit")
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(f"{metered.url}/console")
        expect(page.locator("#fleet-rows")).to_contain_text("CacheHits")
        expect(page.locator("#fleet-rows")).to_contain_text("operation=get,statusClass=2xx")
        expect(page.locator("#alarm-list li[data-alarm='snapshot_age']")).to_have_attribute("data-state", "NO_DATA")
        expect(page.locator("#alarm-list li")).to_have_count(6)
        context.close()


def test_without_local_metrics_the_fleet_panel_says_where_they_are(page: Page):
    expect(page.locator("#fleet-note")).to_contain_text("Metrics Explorer")
