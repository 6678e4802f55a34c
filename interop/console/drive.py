"""Drives the medgate console in headless Chromium, as its operators would.

Run by crates/node/tests/end_to_end/console.rs against a node it started and loaded with a
workload; it reads what to do from the environment:

  MEDGATE_CONSOLE        the admin listener's URL (http://127.0.0.1:PORT)
  MEDGATE_CHROMIUM       the browser (Debian's /usr/bin/chromium)
  MEDGATE_SCREENSHOTS    a folder for the screenshots
  MEDGATE_REVOKE_ID      the installation the operator revokes
  MEDGATE_KEEP_ID        an installation nobody may revoke here (the viewer and a forged form try)
  MEDGATE_OPERATOR, MEDGATE_VIEWER   "name:password" of an operator and of a viewer

Prints one line per step; exits non-zero at the first thing that is not as it must be.
"""

import os
import sys

from playwright.sync_api import expect, sync_playwright

BASE = os.environ["MEDGATE_CONSOLE"]
SHOTS = os.environ["MEDGATE_SCREENSHOTS"]
REVOKE_ID = os.environ["MEDGATE_REVOKE_ID"]
KEEP_ID = os.environ["MEDGATE_KEEP_ID"]
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def step(text):
    print(f"ok: {text}", flush=True)


def check(condition, text):
    if not condition:
        print(f"FAILED: {text}", flush=True)
        sys.exit(1)
    step(text)


def credentials(variable):
    name, password = os.environ[variable].split(":", 1)
    return name, password


def sign_in(page, variable):
    name, password = credentials(variable)
    response = page.goto(f"{BASE}/console")
    check(page.url == f"{BASE}/console/login", f"{name}: signed out, /console sends to the sign-in form")
    check(response.headers.get("content-security-policy") == CSP, "the sign-in page has the CSP")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Sign in").click()
    answer = navigation.value
    check(
        page.url == f"{BASE}/console",
        f"{name}: the sign-in leads to the overview (answered {answer.status if answer else None}:"
        f" {page.locator('main').inner_text()[:200]!r})",
    )
    check(page.locator(".who").inner_text().startswith(name), f"{name} is signed in")


def post_status(page, path, fields):
    """POSTs a form from this page's own origin with fetch; the answer's status."""
    return page.evaluate(
        """async ([path, fields]) => {
            const body = new URLSearchParams(fields);
            const answer = await fetch(path, {method: "POST", body, redirect: "manual"});
            return answer.status;
        }""",
        [path, fields],
    )


def main():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=os.environ["MEDGATE_CHROMIUM"],
            args=["--no-sandbox", "--disable-gpu"],
        )
        # The operator, on a laptop.
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        refusals = []
        page.on(
            "console",
            lambda message: refusals.append(message.text)
            if "Content Security Policy" in message.text
            else None,
        )
        sign_in(page, "MEDGATE_OPERATOR")
        cookies = {cookie["name"]: cookie for cookie in context.cookies()}
        session = cookies.get("__Host-medgate-session")
        check(
            session is not None and session["httpOnly"] and session["secure"]
            and session["sameSite"] == "Strict",
            "the session cookie is HttpOnly, Secure and SameSite=Strict",
        )
        check(page.evaluate("document.cookie") == "", "the page's scripts cannot read the session cookie")

        # The overview, over the last hour: the workload's attestations and requests.
        page.get_by_role("link", name="1h").click()
        page.wait_for_url(f"{BASE}/console?range=1h")
        expect(page.locator("figure.chart").first.locator("rect.s-allow").first).to_be_visible()
        check(page.locator("figure.chart").first.locator("rect.s-reject").count() > 0, "rejections are charted")
        check(page.get_by_role("cell", name="hook_detected").count() == 1, "the hooked client's reason is listed")
        check(page.evaluate("typeof htmx") == "object", "htmx loaded from the console itself")
        page.screenshot(path=f"{SHOTS}/overview.png", full_page=True)
        step("screenshot overview.png")

        # No inline script runs: one injected into the page is refused by the CSP.
        try:
            page.add_script_tag(content="window.__inlineRan = true;")
        except Exception:  # Playwright reports the refused script as an error
            pass
        check(page.evaluate("window.__inlineRan === undefined"), "an inline script did not run")
        check(any("script" in text for text in refusals), "Chromium reported the CSP refusal")

        # Find the installation: htmx replaces the results as the id is typed.
        page.get_by_role("link", name="Installations").click()
        page.wait_for_url(f"{BASE}/console/installations")
        page.get_by_label("Installation id").fill(REVOKE_ID)
        link = page.locator(f'#results a[href="/console/installations/{REVOKE_ID}"]')
        expect(link).to_be_visible()
        expect(page.locator("#results tbody tr")).to_have_count(1)
        check(REVOKE_ID in page.url, "the search is in the address (htmx pushed it)")
        page.screenshot(path=f"{SHOTS}/installations.png", full_page=True)
        step("screenshot installations.png")
        link.click()
        page.wait_for_url(f"{BASE}/console/installations/{REVOKE_ID}")

        # A form without its token is refused, even from the console's own origin.
        check(
            post_status(page, f"/console/installations/{KEEP_ID}/revoke", {}) == 403,
            "a revocation without the CSRF token is refused (403)",
        )
        page.get_by_role("button", name="Revoke installation").click()
        page.wait_for_url(f"{BASE}/console/installations/{REVOKE_ID}")
        expect(page.locator("dd.revoked")).to_be_visible()
        check(page.get_by_role("button", name="Revoke installation").count() == 0, "revoked: no button any more")
        page.screenshot(path=f"{SHOTS}/revoked.png", full_page=True)
        step("screenshot revoked.png")

        # The audit log holds the revocation, as the operator's; the chain verifies.
        page.get_by_role("link", name="Audit").click()
        page.wait_for_url(f"{BASE}/console/audit")
        row = page.locator("table.audit tbody tr", has_text="admin.installation.revoke").first
        expect(row).to_contain_text(f"operator:{credentials('MEDGATE_OPERATOR')[0]}")
        expect(row).to_contain_text(REVOKE_ID)
        page.screenshot(path=f"{SHOTS}/audit.png", full_page=True)
        step("screenshot audit.png")
        page.get_by_role("link", name="Verify the whole chain against it").click()
        expect(page.get_by_role("status")).to_have_text("The chain verifies.")
        step("the audit chain verifies against the signed checkpoint")

        # Apps and releases: who is still on each release.
        page.get_by_role("link", name="Apps").click()
        page.wait_for_url(f"{BASE}/console/apps")
        page.locator("main table a").first.click()
        expect(page.locator("table.releases")).to_be_visible()
        page.screenshot(path=f"{SHOTS}/apps.png", full_page=True)
        step("screenshot apps.png")

        # Versions in the field: each release's adoption, who is on a revoked one.
        page.get_by_role("link", name="Versions").click()
        page.wait_for_url(f"{BASE}/console/versions")
        expect(page.locator("table.versions")).to_be_visible()
        page.screenshot(path=f"{SHOTS}/versions.png", full_page=True)
        step("screenshot versions.png")

        # Keys, pins and secrets: names and versions only.
        page.get_by_role("link", name="Keys").click()
        page.wait_for_url(f"{BASE}/console/keys")
        expect(page.get_by_role("heading", name="Token-signing keys")).to_be_visible()
        page.screenshot(path=f"{SHOTS}/keys.png", full_page=True)
        step("screenshot keys.png")
        context.close()

        # The viewer, on a phone: reads, cannot revoke.
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        page = phone.new_page()
        sign_in(page, "MEDGATE_VIEWER")
        expect(page.locator("figure.chart").first).to_be_visible()
        page.screenshot(path=f"{SHOTS}/overview-phone.png", full_page=True)
        step("screenshot overview-phone.png")
        page.goto(f"{BASE}/console/installations/{KEEP_ID}")
        check(page.get_by_role("button", name="Revoke installation").count() == 0, "a viewer sees no revoke button")
        token = page.locator('form.signout input[name="csrf"]').get_attribute("value")
        check(
            post_status(page, f"/console/installations/{KEEP_ID}/revoke", {"csrf": token}) == 403,
            "a viewer's revocation, with their own valid token, is refused (403)",
        )
        phone.close()
        browser.close()


if __name__ == "__main__":
    main()
