"""Drives Tessera's admin console in headless Chromium (Debian's package,
through Playwright for Python), by the names on the page (SPEC §16).

    python3 browser.py ADMIN_BASE_URL SCREENSHOT_DIR FAKETIME_FILE < admin.token

FAKETIME_FILE is the libfaketime offset file of the server's clock: the
script moves the server's wall clock 16 minutes on to see an idle session
end.

Prints one JSON object: the passwords the console showed (the Rust test
logs in with them), requests to other origins and CSP reports (both must
be empty). Exits non-zero on the first expectation that fails.
"""
import json
import shutil
import sys

from playwright.sync_api import expect, sync_playwright

import time

base, shots, faketime_file = sys.argv[1], sys.argv[2], sys.argv[3]
token = sys.stdin.readline().strip()  # never argv: every process can read that
out = {"foreign_requests": [], "csp_reports": [], "passwords": {}}


def watch(page):
    def on_request(request):
        if not request.url.startswith(base) and not request.url.startswith("data:"):
            out["foreign_requests"].append(request.url)

    def on_console(message):
        text = message.text
        if "Content Security Policy" in text or "Refused to" in text:
            out["csp_reports"].append(text)

    page.on("request", on_request)
    page.on("console", on_console)


def sign_in(page):
    page.goto(base + "/console")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Partners")).to_be_visible()


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
    page = browser.new_page()
    watch(page)

    # A wrong token: the form again, with an error.
    page.goto(base + "/console")
    page.get_by_label("Admin token").fill("not the admin token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not the admin token")
    page.screenshot(path=f"{shots}/sign-in.png")
    sign_in(page)

    # New partner: the password once, gone after a reload and after going back.
    page.get_by_role("link", name="New partner").click()
    page.get_by_label("Username").fill("acme")
    page.get_by_label("Note").fill("Hotel chain, 40 properties")
    page.get_by_label("Scopes").fill("content sync")
    page.get_by_role("button", name="Create").click()
    shown = page.get_by_label("New password")
    expect(shown).to_be_visible()
    out["passwords"]["created"] = shown.locator("code").inner_text()
    page.screenshot(path=f"{shots}/new-password.png")
    page.reload()
    expect(page.get_by_label("New password")).to_have_count(0)
    page.get_by_role("link", name="Partners").click()
    page.go_back()
    expect(page.get_by_role("heading", name="acme")).to_be_visible()
    expect(page.get_by_label("New password")).to_have_count(0)

    # A refusal keeps what was typed.
    page.get_by_role("link", name="New partner").click()
    page.get_by_label("Username").fill("acme")
    page.get_by_label("Note").fill("typed before the refusal")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("alert")).to_contain_text("already exists")
    expect(page.get_by_label("Note")).to_have_value("typed before the refusal")

    # The partner's page: settings, rotation, status, revocation.
    page.goto(base + "/console/users/acme")
    page.get_by_label("Allowed networks").fill("203.0.113.0/24")
    page.get_by_label("Token rate").fill("10/min")
    page.get_by_label("Expires at").fill("2030-01-01T00:00:00Z")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_label("Token rate")).to_have_value("10/min")
    expect(page.get_by_label("Allowed networks")).to_have_value("203.0.113.0/24")
    page.get_by_label("Grace period").fill("1h")
    page.get_by_role("button", name="Rotate secret").click()
    out["passwords"]["rotated"] = page.get_by_label("New password").locator("code").inner_text()
    page.screenshot(path=f"{shots}/partner.png", full_page=True)
    page.get_by_role("button", name="Disable").click()
    page.get_by_role("button", name="Enable").click()
    expect(page.get_by_role("button", name="Disable")).to_be_visible()
    page.get_by_role("button", name="Revoke all tokens").click()
    expect(page.get_by_role("heading", name="acme")).to_be_visible()

    # Partners: a page of 50, Next pages on (the test made hotel00..hotel54).
    page.get_by_role("link", name="Partners").click()
    page.get_by_label("Search").fill("hotel")
    page.get_by_label("Search").press("Enter")
    expect(page.get_by_role("link", name="hotel49")).to_be_visible()
    expect(page.get_by_role("link", name="hotel50")).to_have_count(0)
    page.get_by_role("link", name="Next").click()
    expect(page.get_by_role("link", name="hotel54")).to_be_visible()
    expect(page.get_by_role("link", name="hotel00")).to_have_count(0)
    expect(page.get_by_role("link", name="Next")).to_have_count(0)

    # Partners: search by prefix.
    page.get_by_role("link", name="Partners").click()
    page.get_by_label("Search").fill("ac")
    page.get_by_label("Search").press("Enter")
    expect(page.get_by_role("link", name="acme")).to_be_visible()
    page.screenshot(path=f"{shots}/partners.png")

    # Keys: a rotation too soon is refused with the time to wait.
    page.get_by_role("link", name="Keys").click()
    page.get_by_role("button", name="Rotate keys").click()
    expect(page.get_by_role("alert")).to_be_visible()
    page.screenshot(path=f"{shots}/keys.png")

    # Audit, filtered.
    page.get_by_role("link", name="Audit").click()
    page.get_by_label("Target").fill("acme")
    page.get_by_label("Action").fill("user.secret")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("cell", name="user.secret.rotate")).to_be_visible()
    expect(page.get_by_role("cell", name="user.create")).to_have_count(0)
    page.screenshot(path=f"{shots}/audit.png")

    # A form on another origin posting to the console: 403, nothing made.
    forged = browser.new_page()
    forged.set_content(
        f'<form method="post" action="{base}/console/users">'
        '<input name="username" value="forged"><button>go</button></form>'
    )
    with forged.expect_response(f"{base}/console/users") as answer:
        forged.get_by_role("button", name="go").click()
    assert answer.value.status == 403, answer.value.status
    forged.close()

    # Delete, then Confirm delete.
    page.goto(base + "/console/users/acme")
    page.get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Confirm delete").click()
    expect(page.get_by_role("heading", name="Partners")).to_be_visible()
    expect(page.get_by_role("link", name="acme")).to_have_count(0)

    # Sign out: the form again; the pages are closed.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Admin token")).to_be_visible()
    page.goto(base + "/console/users")
    expect(page.get_by_label("Admin token")).to_be_visible()

    # Without JavaScript: sign in, create, read the password.
    nojs = browser.new_context(java_script_enabled=False).new_page()
    watch(nojs)
    sign_in(nojs)
    nojs.get_by_role("link", name="New partner").click()
    nojs.get_by_label("Username").fill("nojs")
    nojs.get_by_role("button", name="Create").click()
    out["passwords"]["without_javascript"] = nojs.get_by_label("New password").locator("code").inner_text()

    # An idle session ends: the server's clock moves 16 minutes on.
    idle = browser.new_page()
    sign_in(idle)
    with open(faketime_file, "w") as f:
        f.write("+16m")
    # libfaketime re-reads the offset about every second: poll a while.
    for _ in range(10):
        time.sleep(1)
        idle.reload()
        if idle.get_by_label("Admin token").count() == 1:
            break
    expect(idle.get_by_label("Admin token")).to_be_visible()

    browser.close()

print(json.dumps(out))
