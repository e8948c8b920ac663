"""The H5 chat page, driven in headless Debian chromium against the real app.

Needs the `live_server_url` fixture (tests/conftest.py): the real app with a trained model.
"""

import asyncio
import os
import re
from contextlib import asynccontextmanager

import pytest

pytest.importorskip("playwright.async_api")
from playwright.async_api import async_playwright, expect  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
REPLY_TIMEOUT = 30_000  # ms: the first model call can be slow on a cold CI machine
CHINESE = re.compile(r"[\u4e00-\u9fff]")

BOT = ".msg-bot"
USER = ".msg-user"
LIVE_QUICK = ".quick-btn:not([disabled])"


@asynccontextmanager
async def open_page(base_url, viewport=PHONE, **context_options):
    """A fresh browser and phone-sized page.

    `page.requests` lists every URL it asked for, `page.errors` its script errors and console
    errors (a Content-Security-Policy violation shows up there).
    """
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(
                viewport=viewport, is_mobile=True, has_touch=True, locale="zh-CN", **context_options
            )
            page = await context.new_page()
            page.set_default_timeout(REPLY_TIMEOUT)
            page.requests = []
            page.on("request", lambda request: page.requests.append(request.url))
            page.errors = []
            page.on("pageerror", lambda exc: page.errors.append(str(exc)))
            page.on(
                "console",
                lambda msg: page.errors.append(msg.text) if msg.type == "error" else None,
            )
            await page.goto(base_url + "/")
            await expect(page.locator(BOT).first).to_be_visible()
            yield page
        finally:
            await browser.close()


async def send_text(page, text):
    bots_before = await page.locator(BOT).count()
    await page.locator("#input").fill(text)
    await page.locator("#input").press("Enter")
    return bots_before


async def wait_for_reply(page, bots_before):
    await expect(page.locator(BOT)).not_to_have_count(bots_before, timeout=REPLY_TIMEOUT)


async def test_page_loads_locally_with_banner_and_accessible_input(live_server_url):
    async with open_page(live_server_url) as page:
        await page.wait_for_load_state("networkidle")
        assert page.requests, "no request recorded"
        foreign = [u for u in page.requests if not u.startswith(live_server_url)]
        assert not foreign, f"page requested outside the app: {foreign}"

        assert await page.locator("html").get_attribute("lang") == "zh-CN"
        assert "110" in await page.title()

        banner = page.locator("header.banner")
        await expect(banner).to_contain_text("紧急情况能通话请直接拨打")
        await expect(banner.locator('a[href="tel:110"]')).to_be_visible()
        await expect(banner.locator('a[href="sms:12110"]')).to_be_visible()

        log = page.get_by_role("log")
        assert await log.get_attribute("aria-live") == "polite"

        label = page.locator('label[for="input"]')
        assert (await label.text_content()).strip()
        textbox = page.get_by_label(re.compile("报警"))
        await expect(textbox).to_have_attribute("maxlength", "2000")
        assert await textbox.evaluate("e => e.tagName") == "TEXTAREA"
        await expect(page.get_by_role("button", name="发送", exact=True)).to_be_enabled()

        # First open: a local welcome bubble with the two quick replies; nothing sent yet.
        await expect(page.locator(BOT)).to_have_count(1)
        quick = page.locator(LIVE_QUICK)
        await expect(quick).to_have_text(["我要报警", "怎么使用"])
        assert not [u for u in page.requests if "/api/chat" in u]
        assert not page.errors, page.errors


async def test_chat_and_quick_reply(live_server_url):
    async with open_page(live_server_url) as page:
        before = await send_text(page, "你好")
        await expect(page.locator(USER).last.locator(".text")).to_have_text("你好")
        await expect(page.locator("#input")).to_have_value("")
        await wait_for_reply(page, before)

        reply = await page.locator(BOT).last.locator(".text").text_content()
        assert CHINESE.search(reply), reply
        quick = page.locator(LIVE_QUICK)
        await expect(quick.filter(has_text="我要报警")).to_have_count(1)
        await expect(quick.filter(has_text="怎么使用")).to_have_count(1)
        # The welcome bubble's buttons are spent once the user has spoken.
        await expect(page.locator(BOT).first.locator(".quick-btn").first).to_be_disabled()

        before = await page.locator(BOT).count()
        await quick.filter(has_text="怎么使用").click()
        await expect(page.locator(USER).last.locator(".text")).to_have_text("怎么使用")
        await wait_for_reply(page, before)
        await expect(page.locator(BOT).last).to_contain_text("110")
        # The button that was used is now disabled.
        used = page.locator(".quick-btn.chosen", has_text="怎么使用")
        await expect(used).to_be_disabled()
        assert not page.errors, page.errors


async def test_reload_keeps_sender_and_history(live_server_url):
    async with open_page(live_server_url) as page:
        before = await send_text(page, "你好")
        await wait_for_reply(page, before)
        sender = await page.evaluate("localStorage.getItem('alarmbot.sender')")
        assert re.fullmatch(r"h5-[0-9a-f]{32}", sender), sender
        bubbles = await page.locator(".msg").count()
        await page.locator("#input").fill("还没写完的草稿")

        await page.reload()
        await expect(page.locator(".msg")).to_have_count(bubbles)
        await expect(page.locator(USER).last.locator(".text")).to_have_text("你好")
        assert await page.evaluate("localStorage.getItem('alarmbot.sender')") == sender
        await expect(page.locator("#input")).to_have_value("还没写完的草稿")
        # The reply's quick replies are still usable after the reload.
        await expect(page.locator(LIVE_QUICK).filter(has_text="怎么使用")).to_have_count(1)


async def test_network_failure_keeps_text_and_retry_sends_it(live_server_url):
    async with open_page(live_server_url) as page:
        await page.route("**/api/chat", lambda route: route.abort("internetdisconnected"))
        bots_before = await send_text(page, "你好")

        retry = page.get_by_role("button", name="未发送，点击重试")
        await expect(retry).to_be_visible()
        failed = page.locator(".msg-failed")
        await expect(failed.locator(".text")).to_have_text("你好")
        await expect(page.locator("#status")).to_contain_text("未发送")
        stored = await page.evaluate("localStorage.getItem('alarmbot.transcript')")
        assert "你好" in stored
        await expect(page.locator(BOT)).to_have_count(bots_before)

        await page.unroute("**/api/chat")
        await retry.click()
        await wait_for_reply(page, bots_before)
        await expect(page.locator(".msg-failed")).to_have_count(0)
        await expect(retry).to_have_count(0)
        await expect(page.locator("#status")).to_have_text("")
        assert CHINESE.search(await page.locator(BOT).last.text_content())


async def test_sending_indicator_and_no_double_submit(live_server_url):
    async with open_page(live_server_url) as page:
        posts = []

        async def slow(route):
            posts.append(route.request.post_data_json)
            await asyncio.sleep(1.5)
            await route.continue_()

        await page.route("**/api/chat", slow)
        before = await send_text(page, "你好")
        await expect(page.locator("#status")).to_have_text("正在发送…")
        await expect(page.locator("#send")).to_be_disabled()
        await page.locator("#input").fill("第二条")
        await page.locator("#input").press("Enter")
        await wait_for_reply(page, before)
        # Enter while sending neither sent nor lost the second message.
        assert len(posts) == 1, posts
        assert posts[0]["text"] == "你好" and posts[0]["sender"].startswith("h5-")
        await expect(page.locator("#input")).to_have_value("第二条")
        await expect(page.locator("#send")).to_be_enabled()


async def test_screenshot_and_reflow(live_server_url, tmp_path):
    async with open_page(live_server_url) as page:
        before = await send_text(page, "你好")
        await wait_for_reply(page, before)
        shot = tmp_path / "chat-phone.png"
        await page.screenshot(path=str(shot))
        assert shot.stat().st_size > 5_000
        no_sideways_scroll = "document.documentElement.scrollWidth <= window.innerWidth"
        assert await page.evaluate(no_sideways_scroll)

    # 320 CSS px at 200% zoom (WCAG reflow): still no sideways scrolling, banner still there.
    async with open_page(live_server_url, viewport={"width": 320, "height": 422}) as page:
        assert await page.evaluate(no_sideways_scroll)
        await expect(page.locator('header.banner a[href="tel:110"]')).to_be_in_viewport()
        await expect(page.locator("#input")).to_be_in_viewport()
        await page.screenshot(path=str(tmp_path / "chat-zoom200.png"))


async def test_a_report_with_the_phone_location_and_button_answers(live_server_url):
    """A theft report typed once, the place shared from the phone, the rest by buttons."""
    shanghai = {"latitude": 31.2304, "longitude": 121.4737}
    async with open_page(
        live_server_url, geolocation=shanghai, permissions=["geolocation"]
    ) as page:
        before = await send_text(page, "我的电动车在楼下被人偷了")
        await wait_for_reply(page, before)
        await expect(page.locator(BOT).last).to_contain_text("地点")

        before = await page.locator(BOT).count()
        await page.get_by_role("button", name="发送我的位置").click()
        await expect(page.locator(USER).last).to_contain_text("31.23040")
        await wait_for_reply(page, before)
        await expect(page.locator(BOT).last).to_contain_text("什么时候")

        for title in ("就是刚才", "没看到", "没有车辆", "不便接听，只发文字"):
            before = await page.locator(BOT).count()
            await page.locator(LIVE_QUICK).filter(has_text=title).click()
            await wait_for_reply(page, before)
        card = page.locator(BOT).last
        await expect(card).to_contain_text("请核对")
        await expect(card).to_contain_text("定位 31.23040,121.47370")
        before = await page.locator(BOT).count()
        await page.locator(LIVE_QUICK).filter(has_text="提交").click()
        await wait_for_reply(page, before)
        await expect(page.locator(BOT).filter(has_text="报警编号")).to_have_count(1)
        assert not page.errors, page.errors


def tiny_png():
    """A real 1×1 PNG, built here so the test needs no fixture file."""
    import struct
    import zlib

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xb3\x26\x1e"))
        + chunk(b"IEND", b"")
    )


async def choose_file(page, name, mime, buffer):
    """Press the labelled button, as a citizen would, and pick a file in the chooser."""
    async with page.expect_file_chooser() as chooser:
        await page.get_by_role("button", name="发送照片").click()
    await (await chooser.value).set_files({"name": name, "mimeType": mime, "buffer": buffer})


async def test_photo_upload_shows_the_confirmation(live_server_url):
    async with open_page(live_server_url) as page:
        before = await send_text(page, "我的电动车在楼下被人偷了")
        await wait_for_reply(page, before)
        question = page.locator(BOT).last
        await expect(question).to_contain_text("地点")

        uploads = []
        page.on("request", lambda r: uploads.append(r) if "/api/upload" in r.url else None)
        before = await page.locator(BOT).count()
        await choose_file(page, "张三.png", "image/png", tiny_png())
        await expect(page.locator(USER).last.locator(".text")).to_have_text(
            re.compile(r"^\[照片\] 1 KB$")
        )
        await wait_for_reply(page, before)
        await expect(page.locator(BOT).last).to_contain_text("照片已收到")
        await expect(page.locator(".msg-failed, .msg-unsent")).to_have_count(0)
        [request] = uploads
        assert "multipart/form-data" in request.headers["content-type"]
        assert "张三" not in (request.post_data_buffer or b"").decode("utf-8", "replace")

        # The photo is an aside: the report goes on with the question asked before it.
        before = await send_text(page, "黄浦区福州路185号")
        await wait_for_reply(page, before)
        await expect(page.locator(BOT).last).to_contain_text("什么时候")
        assert not page.errors, page.errors


async def test_photo_upload_refuses_a_wrong_file_on_the_phone(live_server_url):
    async with open_page(live_server_url) as page:
        await choose_file(page, "notes.txt", "text/plain", b"not a photo")
        await expect(page.locator("#status")).to_contain_text("只能发送")
        await choose_file(page, "big.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * (10 << 20))
        await expect(page.locator("#status")).to_contain_text("10MB")
        await expect(page.locator(USER)).to_have_count(0)
        assert not [u for u in page.requests if "/api/upload" in u]
        # A failed network upload keeps the photo for a retry, like a text message.
        await page.route("**/api/upload", lambda route: route.abort("internetdisconnected"))
        await choose_file(page, "a.png", "image/png", tiny_png())
        retry = page.get_by_role("button", name="未发送，点击重试")
        await expect(retry).to_be_visible()
        await page.unroute("**/api/upload")
        before = await page.locator(BOT).count()
        await retry.click()
        await wait_for_reply(page, before)
        await expect(page.locator(BOT).last).to_contain_text("照片已收到")
        await expect(retry).to_have_count(0)
        script_errors = [e for e in page.errors if "ERR_INTERNET_DISCONNECTED" not in e]
        assert not script_errors, script_errors


async def test_news_about_a_report_appears_in_the_chat_once(live_server, live_server_url):
    from bot.app import RUNTIME
    from store.notices import NoticeBoard

    async with open_page(live_server_url) as page:
        sender = await page.evaluate("() => localStorage.getItem('alarmbot.sender')")
        runtime = live_server.app[RUNTIME]
        text = "您的报警（编号2026112300001）正在由相关部门办理中。"
        live_server.call(NoticeBoard(runtime.db, runtime.cipher).post("web", sender, text))
        await page.reload()
        await expect(page.locator(BOT).filter(has_text="正在由相关部门办理中")).to_have_count(1)
        await page.reload()  # handed out once; the transcript keeps it
        await page.wait_for_load_state("networkidle")
        await expect(page.locator(BOT).filter(has_text="正在由相关部门办理中")).to_have_count(1)
        assert not page.errors, page.errors
