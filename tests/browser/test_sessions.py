#!/usr/bin/env python3
"""Browser sessions in a real browser: headless Chromium through chromedriver (selenium).

Run by tests/browser/run.sh, which starts moto, Redis, the demo app (deploy/local/upstream.py,
which echoes what it received as JSON, `identity` holding the X-Auth-* headers) and two
sidecars sharing Redis, and passes their addresses in BROWSER_* variables.

Each scenario starts with no cookies and signs in a user of its own (a sign-out ends every
session of its user). A scenario asserts what the app received (the echo in the page) and
the exact URL, and the status of every document hop (redirects included), read from
Chromium's network log. Every wait is bounded (WAIT seconds).

Exit status 0 when every scenario passed. A failing scenario leaves a screenshot and the page
source in BROWSER_WORK (kept with BROWSER_KEEP=1).
"""

import base64
import hmac
import json
import os
import re
import secrets
import struct
import sys
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

A = os.environ["BROWSER_SIDECAR_A"]
B = os.environ["BROWSER_SIDECAR_B"]
ADMIN_A = os.environ["BROWSER_ADMIN_A"]
ADMIN_B = os.environ["BROWSER_ADMIN_B"]
PASSWORD = os.environ["BROWSER_PASSWORD"]
WORK = os.environ["BROWSER_WORK"]
SHOTS = os.environ["BROWSER_SCREENSHOTS"]
UPSTREAM_LOG = os.environ["BROWSER_UPSTREAM_LOG"]
CLIENT_ID = os.environ["COGNITO_APP_CLIENT_ID"]
# Sign-in with identity providers: sidecar C, whose pool's domain is the OpenID provider.
C = os.environ["BROWSER_SIDECAR_C"]
ADMIN_C = os.environ["BROWSER_ADMIN_C"]
OIDC = os.environ["BROWSER_OIDC"]
FED_CLIENT = os.environ["BROWSER_FED_CLIENT"]
FED_PASSWORD = "Fed3rated!pass"  # tests/oidc/provider.mjs
NOT_COMPLETED = "Sign-in with your identity provider did not complete. Please try again."
FLOW_COOKIE = "__Host-sidecar-oauth"  # src/browser/session.rs: binds a federated sign-in to its browser
# MFA setup: sidecar D, on a pool of its own with MFA ON (its new@example.com sets up TOTP).
D = os.environ["BROWSER_SIDECAR_D"]
MFA_CLIENT_ID = os.environ["BROWSER_MFA_CLIENT"]
EXPIRED = "This sign-in has expired or was already used. Please sign in again."

DEMO = ("demo@example.com", "Demo-Passw0rd!")  # deploy/local/bootstrap.py, group admin
NEW = ("new@example.com", "Temp-Passw0rd!")  # temporary password
SESSION_COOKIE = "__Host-sidecar-session"
WAIT = 15  # seconds: the bound of every wait (page loads, elements, HTTP calls)


class Failure(AssertionError):
    pass


def check(cond, what, got=None):
    if not cond:
        raise Failure(what if got is None else f"{what}; got {got!r}")


def eq(got, want, what):
    if got != want:
        raise Failure(f"{what}: expected {want!r}, got {got!r}")


# ---------------------------------------------------------------- HTTP without the browser


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(NoRedirect, urllib.request.ProxyHandler({}))


def http(method, url, headers=None, body=None):
    """(status, headers, body text) of one request, redirects not followed."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _opener.open(req, timeout=WAIT) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def metric(admin, series):
    """A sample from a sidecar's admin listener (0 when the series has none yet)."""
    status, _, text = http("GET", f"{admin}/metrics")
    eq(status, 200, f"GET {admin}/metrics")
    m = re.search(r"^" + re.escape(series) + r" (\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def refreshes_ok():
    return metric(ADMIN_A, 'sidecar_session_refreshes_total{outcome="ok"}')


# ---------------------------------------------------------------- the browser


def make_driver():
    profile = os.path.join(WORK, "chromium-profile")
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        "--password-store=basic",
        f"--user-data-dir={profile}",
        "--window-size=800,600",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
        "--lang=en-US",
    ):
        opts.add_argument(arg)
    # No password manager: no "save password" bubble, no leak check calling out.
    opts.add_experimental_option(
        "prefs",
        {
            "credentials_enable_service": False,
            "profile.password_manager_enabled": False,
            "profile.password_manager_leak_detection": False,
        },
    )
    # The network log gives every document's status, redirects included.
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    service = Service(
        executable_path="/usr/bin/chromedriver",
        log_output=os.path.join(WORK, "chromedriver.log"),
    )
    driver = webdriver.Chrome(options=opts, service=service)
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    return driver


class Browser:
    def __init__(self, driver):
        self.d = driver

    # -- navigation and the network log

    def go(self, url):
        self.hops()  # forget earlier traffic
        self.d.get(url)

    def hops(self):
        """The document requests since the last call, in order: dicts with url, method,
        status, location, and (when Chromium reported them) the request headers actually
        sent and the names of the cookies sent and blocked."""
        sent = {}  # requestId -> list of hops
        extra = {}  # requestId -> list of ExtraInfo params
        order = []
        for entry in self.d.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            p = msg.get("params", {})
            rid = p.get("requestId")
            if msg["method"] == "Network.requestWillBeSent" and p.get("type") == "Document":
                hops = sent.setdefault(rid, [])
                if rid not in order:
                    order.append(rid)
                if p.get("redirectResponse") and hops:
                    r = p["redirectResponse"]
                    hops[-1]["status"] = r["status"]
                    hops[-1]["location"] = header(r["headers"], "location")
                req = p["request"]
                hops.append({"url": req["url"], "method": req["method"], "status": None})
            elif msg["method"] == "Network.requestWillBeSentExtraInfo":
                extra.setdefault(rid, []).append(p)
            elif msg["method"] == "Network.responseReceived" and p.get("type") == "Document":
                if sent.get(rid):
                    sent[rid][-1]["status"] = p["response"]["status"]
        out = []
        for rid in order:
            infos = extra.get(rid, [])
            for i, hop in enumerate(sent[rid]):
                if i < len(infos) and len(infos) == len(sent[rid]):
                    info = infos[i]
                    hop["headers"] = {k.lower(): v for k, v in info.get("headers", {}).items()}
                    cookies = info.get("associatedCookies", [])
                    hop["cookies_sent"] = [
                        c["cookie"]["name"] for c in cookies if not c.get("blockedReasons")
                    ]
                    hop["cookies_blocked"] = {
                        c["cookie"]["name"]: c["blockedReasons"]
                        for c in cookies
                        if c.get("blockedReasons")
                    }
                out.append(hop)
        return out

    def expect_hops(self, want):
        """Asserts the document hops: a list of (method, url, status[, location])."""
        got = self.hops()
        short = [
            (h["method"], h["url"], h["status"]) + ((h["location"],) if h.get("location") else ())
            for h in got
        ]
        eq(short, want, "document requests (method, url, status[, location])")
        return got

    def url(self):
        return self.d.current_url

    def wait_url(self, url):
        try:
            WebDriverWait(self.d, WAIT).until(EC.url_to_be(url))
        except TimeoutException:
            raise Failure(f"expected to land on {url}, still on {self.url()}") from None

    # -- cookies

    def clear_cookies(self):
        self.d.execute_cdp_cmd("Network.clearBrowserCookies", {})

    def cookie(self, name=SESSION_COOKIE):
        """The cookie as the browser keeps it for the current page's URL, or None."""
        return next((c for c in self.d.get_cookies() if c["name"] == name), None)

    # -- pages

    def el(self, css):
        try:
            return WebDriverWait(self.d, WAIT).until(
                EC.presence_of_element_located((By.CSS_SELECTOR, css))
            )
        except TimeoutException:
            raise Failure(f"no {css} on {self.url()}") from None

    def text(self, css):
        """The element's text, read again if the document changed under the read (Chromium
        answers "Node with given id does not belong to the document" while a navigation that
        ended a redirect chain settles)."""
        try:
            return WebDriverWait(self.d, WAIT, ignored_exceptions=(WebDriverException,)).until(
                lambda d: (d.find_element(By.CSS_SELECTOR, css).text,)
            )[0]
        except TimeoutException:
            raise Failure(f"no {css} on {self.url()}") from None

    def submit(self, fields, button="button[type=submit]"):
        """Types into the form's fields and clicks its button; waits for the next page."""
        for css, value in fields.items():
            e = self.el(css)
            e.clear()
            e.send_keys(value)
        old = self.el("html")
        self.hops()  # forget earlier traffic
        self.el(button).click()
        try:
            WebDriverWait(self.d, WAIT).until(lambda d: detached(old))
            WebDriverWait(self.d, WAIT).until(
                lambda d: d.execute_script("return document.readyState") == "complete"
            )
        except TimeoutException:
            raise Failure(f"clicking {button} on {self.url()} loaded no page") from None

    def sign_in(self, email, password):
        self.submit({"#email": email, "#password": password})

    def echo(self):
        """The demo app's JSON answer (Chromium shows it in a <pre>)."""
        raw = self.text("pre")
        try:
            return json.loads(raw)
        except ValueError:
            raise Failure(f"not JSON on {self.url()}: {raw[:300]!r}") from None

    def screenshot(self, name):
        path = os.path.join(SHOTS, name)
        check(self.d.save_screenshot(path), f"screenshot {path}")
        return path


def detached(element):
    """Whether an element's document is gone (a navigation replaced it). Chromium reports this
    as a stale element, or, while the new document settles, as "Node with given id does not
    belong to the document": selenium's staleness_of knows only the first."""
    try:
        element.is_enabled()
        return False
    except WebDriverException:
        return True


def sent_header(hop, name):
    """A request header as Chromium sent it (its network log's ExtraInfo)."""
    check("headers" in hop, "Chromium reported the headers sent", hop)
    return hop["headers"].get(name)


def header(headers, name):
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


def sign_in_url(base, ret):
    return f"{base}/_auth/sign-in?return=" + urllib.parse.quote(ret, safe="")


def identity_of(doc, username, groups=None, client_id=CLIENT_ID):
    """Asserts the identity the app received for `username`; returns its sub."""
    ident = doc["identity"]
    eq(ident.get("x-auth-username"), username, "X-Auth-Username the app received")
    eq(ident.get("x-auth-client-id"), client_id, "X-Auth-Client-Id the app received")
    eq(ident.get("x-auth-token-use"), "access", "X-Auth-Token-Use the app received")
    eq(ident.get("x-auth-groups"), groups, "X-Auth-Groups the app received")
    sub = ident.get("x-auth-sub", "")
    check(re.fullmatch(r"[0-9a-f-]{36}", sub), "X-Auth-Sub is the user's sub", sub)
    # The app never gets the sidecar's cookies, nor a token it did not ask for.
    cookies = doc["headers"].get("cookie", "")
    check("__Host-sidecar" not in cookies, "the app received no sidecar cookie", cookies)
    check("authorization" not in doc["headers"], "the app received no Authorization header")
    return sub


# ---------------------------------------------------------------- the cross-site page


class CrossSite(BaseHTTPRequestHandler):
    """Another origin's page: a form posting to a protected path of sidecar A."""

    target = ""

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = (
            "<!doctype html><html lang=en><title>elsewhere</title>"
            f'<form method="post" action="{self.target}">'
            '<input type="hidden" name="amount" value="1000">'
            '<button id="go" type="submit">Claim your prize</button></form></html>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def upstream_saw(path):
    with open(UPSTREAM_LOG, encoding="utf-8", errors="replace") as f:
        return any(f'"POST {path} ' in line for line in f)


# ---------------------------------------------------------------- the scenarios


def sign_in_lands_on_the_original_page(b):
    """Protected page -> sign-in -> (wrong password: the API's message) -> sign in -> back on
    the original page, showing the identity the app received; the cookie's attributes."""
    b.clear_cookies()
    target = "/orders/42?tab=items&q=a%20b"
    b.go(A + target)
    login = sign_in_url(A, target)
    eq(b.url(), login, "a navigation without a session lands on sign-in")
    b.expect_hops([("GET", A + target, 302, login[len(A) :]), ("GET", login, 200)])
    eq(b.el("input[name=return]").get_attribute("value"), target, "the form's return field")
    eq(b.d.title, "Sign in", "the sign-in page's title")
    b.screenshot("sign-in.png")

    b.sign_in(DEMO[0], "Wrong-Passw0rd!")
    eq(b.text("#error"), "Incorrect email or password", "the error paragraph")
    eq(b.el("#error").get_attribute("role"), "alert", "the error's role")
    eq(b.el("#email").get_attribute("value"), DEMO[0], "the email is kept")
    b.expect_hops([("POST", A + "/_auth/sign-in", 401)])
    check(b.cookie() is None, "no session cookie after a wrong password")

    b.sign_in(*DEMO)
    eq(b.url(), A + target, "back on the original page")
    b.expect_hops([("POST", A + "/_auth/sign-in", 303, target), ("GET", A + target, 200)])
    doc = b.echo()
    eq((doc["method"], doc["path"]), ("GET", target), "the request the app received")
    identity_of(doc, DEMO[0], groups="admin")

    c = b.cookie()
    check(c is not None, "the session cookie is set")
    eq(
        (c["path"], c["secure"], c["httpOnly"], c.get("sameSite"), c["domain"]),
        ("/", True, True, "Lax", "127.0.0.1"),
        "the session cookie's path, Secure, HttpOnly, SameSite, host-only domain",
    )
    left = c["expiry"] - time.time()
    check(43_000 < left <= 43_200 + 5, "Max-Age is session.absolute_timeout (12 h)", left)

    # The group rule of /admin/* sees the session's groups too.
    b.go(A + "/admin/")
    eq(b.echo()["path"], "/admin/", "the admin page through the session")


def temporary_password_goes_through_the_new_password_page(b):
    b.clear_cookies()
    target = "/reports?month=2024-06"
    b.go(A + target)
    eq(b.url(), sign_in_url(A, target), "sign-in first")
    b.sign_in(*NEW)
    # The challenge answers the sign-in POST with the new-password page itself.
    b.expect_hops([("POST", A + "/_auth/sign-in", 200)])
    eq(b.text("h1"), "Choose a new password", "the new-password page's heading")
    eq(b.el("input[name=return]").get_attribute("value"), target, "return is carried on")
    eq(b.el("input[name=email]").get_attribute("value"), NEW[0], "the email is carried on")
    check(b.el("input[name=session]").get_attribute("value"), "Cognito's session is in the form")
    check(b.cookie() is None, "no session cookie before the new password")
    b.screenshot("new-password.png")

    b.submit({"#new_password": "Chosen-Passw0rd!", "#confirm_password": "Chosen-Passw0rd!"})
    eq(b.url(), A + target, "back on the original page")
    b.expect_hops([("POST", A + "/_auth/new-password", 303, target), ("GET", A + target, 200)])
    identity_of(b.echo(), NEW[0], groups=None)

    # Not in group admin: the group rule refuses the session's identity.
    b.go(A + "/admin/")
    b.expect_hops([("GET", A + "/admin/", 403)])
    eq(json.loads(b.text("pre"))["code"], "insufficient_scope", "/admin/ without the group")


def reload_after_the_refresh_margin_refreshes_once(b):
    b.clear_cookies()
    user = "refresh@example.com"
    b.go(A + "/whoami")
    b.sign_in(user, PASSWORD)
    signed_in = time.monotonic()
    eq(b.url(), A + "/whoami", "signed in")
    sub = identity_of(b.echo(), user)

    # session.refresh_margin is 3598 s and moto's tokens live 3600 s: from 2 s after the
    # sign-in's second on, the next request refreshes the access token first.
    time.sleep(max(0.0, signed_in + 3.0 - time.monotonic()))
    before = refreshes_ok()
    b.hops()
    b.d.refresh()
    reloaded = time.monotonic()
    b.expect_hops([("GET", A + "/whoami", 200)])
    eq(identity_of(b.echo(), user), sub, "still signed in as the same user after the refresh")
    eq(refreshes_ok() - before, 1, "refreshes (sidecar_session_refreshes_total ok) on reload")

    # The new token is fresh for 2 s: a reload right away does not refresh again.
    b.d.refresh()
    identity_of(b.echo(), user)
    if time.monotonic() - reloaded < 1.5:
        eq(refreshes_ok() - before, 1, "refreshes after a second, immediate reload")


def sign_out_ends_the_session_on_both_sidecars(b):
    b.clear_cookies()
    user = "signout@example.com"
    b.go(A + "/whoami")
    b.sign_in(user, PASSWORD)
    eq(b.url(), A + "/whoami", "signed in on sidecar A")
    sub = identity_of(b.echo(), user)
    # Cookies do not depend on the port: sidecar B gets the cookie and finds the session
    # in Redis.
    b.go(B + "/whoami")
    b.expect_hops([("GET", B + "/whoami", 200)])
    eq(identity_of(b.echo(), user), sub, "the same session on sidecar B")
    old = b.cookie()["value"]

    b.go(A + "/_auth/sign-out")
    eq(b.text("h1"), "Sign out", "the sign-out page")
    b.submit({}, button="button[type=submit]")
    signed_out = time.monotonic()
    eq(b.url(), A + "/_auth/sign-in", "after sign-out: session.after_sign_out")
    b.expect_hops(
        [("POST", A + "/_auth/sign-out", 303, "/_auth/sign-in"), ("GET", A + "/_auth/sign-in", 200)]
    )
    check(b.cookie() is None, "the session cookie is cleared")

    b.go(A + "/whoami")
    eq(b.url(), sign_in_url(A, "/whoami"), "a protected page sends to sign-in again")

    # The old cookie, put back, works on neither sidecar. B still holds its copy of the
    # session (kept up to 10 s; this is the only session B ever saw), so what refuses it
    # there is the revocation of its tokens, which the sign-out on A sent fleet-wide.
    eq(metric(ADMIN_B, "sidecar_sessions_active"), 1, "sessions B holds before the check")
    for base in (B, A):
        b.d.add_cookie(
            {
                "name": SESSION_COOKIE,
                "value": old,
                "path": "/",
                "secure": True,
                "httpOnly": True,
                "sameSite": "Lax",
            }
        )
        eq(b.cookie()["value"], old, "the old cookie is back in the browser")
        b.go(base + "/whoami")
        eq(b.url(), sign_in_url(base, "/whoami"), f"the old cookie on {base}")
        b.expect_hops(
            [
                ("GET", base + "/whoami", 302, sign_in_url("", "/whoami")),
                ("GET", sign_in_url(base, "/whoami"), 200),
            ]
        )
        check(b.cookie() is None, f"{base} clears the dead cookie")
    eq(metric(ADMIN_B, "sidecar_sessions_active"), 0, "sessions B holds after the check")
    print(f"     (old cookie refused on both {time.monotonic() - signed_out:.2f} s after sign-out)")
    for base in (A, B):
        status, headers, body = http(
            "GET",
            base + "/whoami",
            {"Cookie": f"{SESSION_COOKIE}={old}", "Accept": "application/json"},
        )
        got = (status, json.loads(body)["code"], headers.get("Set-Cookie", "").split(";")[0])
        want = (401, "token_missing", f"{SESSION_COOKIE}=")
        eq(got, want, f"the old cookie without a browser on {base}")


def cross_site_form_post_is_refused(b):
    b.clear_cookies()
    user = "csrf@example.com"
    b.go(A + "/whoami")
    b.sign_in(user, PASSWORD)
    identity_of(b.echo(), user)

    # Control: the same POST from the app's own origin passes (Sec-Fetch-Site: same-origin).
    same = "/transfer-same-origin"
    result = b.d.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch(arguments[0], {method: "POST", body: "amount=1000",
              headers: {"Content-Type": "application/x-www-form-urlencoded"}})
          .then(r => r.text().then(t => done([r.status, t])))
          .catch(e => done([0, String(e)]));""",
        A + same,
    )
    eq(result[0], 200, "a same-origin POST with the session")
    doc = json.loads(result[1])
    eq((doc["method"], doc["path"]), ("POST", same), "what the app received")
    identity_of(doc, user)
    check(upstream_saw(same), "the app's log shows the same-origin POST")

    server = ThreadingHTTPServer(("127.0.0.1", 0), CrossSite)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        # 127.0.0.1:<other port> is another origin but the same site: SameSite=Lax lets the
        # cookie go with the form; Fetch Metadata (Sec-Fetch-Site: same-site) is refused.
        CrossSite.target = A + "/transfer-same-site"
        b.go(f"http://127.0.0.1:{port}/")
        b.submit({}, button="#go")
        eq(b.url(), A + "/transfer-same-site", "the form was posted")
        hop = b.expect_hops([("POST", A + "/transfer-same-site", 403)])[0]
        eq(json.loads(b.text("pre"))["code"], "csrf_rejected", "the sidecar's answer")
        eq(sent_header(hop, "sec-fetch-site"), "same-site", "Sec-Fetch-Site of the POST")
        check(SESSION_COOKIE in hop["cookies_sent"], "the session cookie went with it", hop)
        check(not upstream_saw("/transfer-same-site"), "the app never saw the cross-site POST")

        # From http://localhost:<port> it is another site: SameSite=Lax keeps the cookie
        # from a cross-site POST, so the request comes without a session: 401.
        CrossSite.target = A + "/transfer-cross-site"
        b.go(f"http://localhost:{port}/")
        b.submit({}, button="#go")
        eq(b.url(), A + "/transfer-cross-site", "the form was posted")
        hop = b.expect_hops([("POST", A + "/transfer-cross-site", 401)])[0]
        eq(json.loads(b.text("pre"))["code"], "token_missing", "the sidecar's answer")
        eq(sent_header(hop, "sec-fetch-site"), "cross-site", "Sec-Fetch-Site of the POST")
        blocked = hop["cookies_blocked"].get(SESSION_COOKIE, [])
        check(any("SameSiteLax" in r for r in blocked), "the cookie was held back (Lax)", hop)
        check(not upstream_saw("/transfer-cross-site"), "the app never saw the cross-site POST")
    finally:
        server.shutdown()
        server.server_close()

    # The session itself is untouched.
    b.go(A + "/whoami")
    identity_of(b.echo(), user)


def return_path_to_another_site_lands_on_root(b):
    b.clear_cookies()
    # The page's form already carries "/" for any return that could leave the origin.
    for ret in ("//evil.example", "/\\evil.example", "https://evil.example/x", "/%2F%2Fx.example"):
        b.go(sign_in_url(A, ret))
        eq(b.el("input[name=return]").get_attribute("value"), "/", f"the return field for {ret!r}")
    b.go(A + "/_auth/sign-in?return=//evil.example")
    user = "return@example.com"
    b.sign_in(user, PASSWORD)
    eq(b.url(), A + "/", "signed in with return=//evil.example")
    b.expect_hops([("POST", A + "/_auth/sign-in", 303, "/"), ("GET", A + "/", 200)])
    doc = b.echo()
    eq(doc["path"], "/", "the path the app received")
    identity_of(doc, user)


def forgotten_password_is_reset_and_signs_in(b):
    """Sign-in page -> "Forgot your password?" -> the email -> the code and the new password
    twice (a mismatch is announced) -> signed in on the original page; the old password fails."""
    b.clear_cookies()
    target = "/projects?view=mine"
    b.go(A + target)
    eq(b.url(), sign_in_url(A, target), "sign-in first")
    user = "forgot@example.com"
    b.submit({}, button="a[href^='/_auth/forgot-password']")
    eq(b.text("h1"), "Forgot your password?", "the recovery page's heading")
    eq(b.el("input[name=return]").get_attribute("value"), target, "return is carried on")
    b.screenshot("forgot-password.png")
    b.submit({"#email": user})
    b.expect_hops([("POST", A + "/_auth/forgot-password", 200)])
    eq(b.text("h1"), "Choose a new password", "the reset page's heading")
    check(b.el("#policy").text.startswith("At least"), "the pool's policy is shown", b.el("#policy").text)
    b.submit({"#code": "123456", "#new_password": "Reset-Passw0rd-1!", "#confirm_password": "Reset-Passw0rd-2!"})
    eq(b.text("#error"), "The two passwords do not match.", "a mismatch is announced")
    b.screenshot("reset-password.png")
    b.submit({"#code": "123456", "#new_password": "Reset-Passw0rd-1!", "#confirm_password": "Reset-Passw0rd-1!"})
    eq(b.url(), A + target, "signed in, back on the original page")
    b.expect_hops([("POST", A + "/_auth/reset-password", 303, target), ("GET", A + target, 200)])
    identity_of(b.echo(), user)
    b.clear_cookies()
    b.go(sign_in_url(A, "/"))
    b.sign_in(user, PASSWORD)
    eq(b.text("#error"), "Incorrect email or password", "the old password no longer works")


def totp(key, at=None):
    """The RFC 6238 code of an authenticator key (base32, as the page shows it): HMAC-SHA1,
    30 s steps, 6 digits."""
    raw = base64.b32decode(key.replace(" ", "").upper() + "=" * (-len(key.replace(" ", "")) % 8))
    step = int(time.time() if at is None else at) // 30
    digest = hmac.new(raw, struct.pack(">Q", step), "sha1").digest()
    offset = digest[-1] & 15
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def mfa_setup_from_the_key_on_the_page(b):
    """A temporary password in a pool with MFA ON: the new password, then the MFA_SETUP page
    with the key as a QR code and as text; a wrong code is refused on the same page with the
    same key; the code computed from the key on the page signs in, back on the original page."""
    b.clear_cookies()
    target = "/settings/security?tab=mfa"
    b.go(D + target)
    eq(b.url(), sign_in_url(D, target), "sign-in first")
    b.sign_in(*NEW)
    eq(b.text("h1"), "Choose a new password", "a temporary password: the new-password page")
    chosen = "Enrolled-Passw0rd!"
    b.submit({"#new_password": chosen, "#confirm_password": chosen})
    b.expect_hops([("POST", D + "/_auth/new-password", 200)])
    eq(b.text("h1"), "Set up your authenticator app", "MFA_SETUP's page")
    eq(b.d.title, "Set up your authenticator app · Sign in", "its title")
    qr = b.el(".qr svg")
    eq(qr.get_attribute("role"), "img", "the QR code is an inline SVG image")
    check(qr.size["width"] >= 100, "the QR code is drawn", qr.size)
    key = b.text("#secret")
    check(re.fullmatch(r"[A-Za-z2-7 ]{8,}", key), "the key is base32 text", key)
    eq(b.el("input[name=secret]").get_attribute("value"), key, "the form carries the same key")
    eq(b.el("input[name=return]").get_attribute("value"), target, "return is carried on")
    check(b.cookie() is None, "no session before the first code")
    # The page is taller than the others: the whole of it, from the top, in a taller window.
    size = b.d.get_window_size()
    b.d.set_window_size(size["width"], size["height"] + 300)
    b.d.execute_script("window.scrollTo(0, 0)")
    b.screenshot("mfa-setup.png")
    b.d.set_window_size(size["width"], size["height"])

    # A code no authenticator shows now: refused here, with the same key.
    now = totp(key)
    wrong = next(c for c in ("000000", "111111", "222222") if c not in (now, totp(key, time.time() + 30)))
    b.submit({"#code": wrong})
    b.expect_hops([("POST", D + "/_auth/mfa-setup", 400)])
    eq(b.text("h1"), "Set up your authenticator app", "still the setup page")
    eq(b.el("#error").get_attribute("role"), "alert", "the refusal is announced")
    check(b.text("#error"), "the refusal says why")
    eq(b.text("#secret"), key, "the same key after a wrong code")
    check(b.cookie() is None, "no session after a wrong code")

    # The code an authenticator app would show for that key (not in a step's last seconds,
    # so that moto checks it in the same step).
    if time.time() % 30 > 26:
        time.sleep(30.2 - time.time() % 30)
    b.submit({"#code": totp(key)})
    eq(b.url(), D + target, "signed in, back on the original page")
    b.expect_hops([("POST", D + "/_auth/mfa-setup", 303, target), ("GET", D + target, 200)])
    doc = b.echo()
    eq((doc["method"], doc["path"]), ("GET", target), "the request the app received")
    identity_of(doc, NEW[0], client_id=MFA_CLIENT_ID)
    check(b.cookie() is not None, "the session cookie is set")


def provider_events(name):
    status, _, text = http("GET", f"{OIDC}/_test/events")
    eq(status, 200, "the provider's events")
    return [e for e in json.loads(text) if e["event"] == name]


def federated_sign_in_and_sign_out_through_the_provider(b):
    """Protected page -> sign-in page with the providers -> "Continue with Okta" -> the
    provider's sign-in -> back on the original page as Okta_alice@example.com; a reload after
    the refresh margin refreshes at the provider's token endpoint; sign-out goes
    on through the provider's /logout and back, and the next sign-in asks the provider again."""
    b.clear_cookies()
    http("POST", f"{OIDC}/_test/reset")
    target = "/orders/7?tab=items"
    b.go(C + target)
    eq(b.url(), sign_in_url(C, target), "a navigation without a session lands on sign-in")
    buttons = [a.text for a in b.d.find_elements(By.CSS_SELECTOR, "a.provider")]
    eq(buttons, ["Continue with Okta", "Continue with Google", "Use another way to sign in"], "the provider buttons")
    b.screenshot("sign-in-providers.png")
    b.submit({}, button="a.provider[href*='provider=Okta']")
    check(b.url().startswith(OIDC + "/login/"), "at the provider's sign-in page", b.url())
    eq(b.text("#title"), "Sign in with Okta", "the provider's page")
    b.submit({"#username": "alice@example.com", "#password": FED_PASSWORD}, button="#sign-in")
    signed_in = time.monotonic()
    eq(b.url(), C + target, "back on the original page")
    chain = [(h["method"], h["url"].split("?")[0], h["status"]) for h in b.hops()]
    eq(chain[-2:], [("GET", C + "/_auth/callback", 303), ("GET", C + "/orders/7", 200)], "the callback, then the page")
    doc = b.echo()
    eq((doc["method"], doc["path"]), ("GET", target), "the request the app received")
    ident = doc["identity"]
    eq(ident.get("x-auth-username"), "Okta_alice@example.com", "X-Auth-Username the app received")
    eq(ident.get("x-auth-groups"), "staff", "X-Auth-Groups the app received")
    eq(ident.get("x-auth-client-id"), FED_CLIENT, "X-Auth-Client-Id the app received")
    check("__Host-sidecar" not in doc["headers"].get("cookie", ""), "the app received no sidecar cookie")
    c = b.cookie()
    check(c is not None and c["sameSite"] == "Lax", "the session cookie is set", c)
    authz = provider_events("authorize")
    eq([(e["identity_provider"], e["code_challenge_method"], e["has_nonce"]) for e in authz], [("Okta", "S256", True)], "what the provider was asked")
    eq([(e["grant_type"], e["has_code_verifier"]) for e in provider_events("token")], [("authorization_code", True)], "the code exchange")

    # Transparent refresh: C's session.refresh_margin is 3598 s of the provider's 3600 s
    # tokens, so from 2 s after the sign-in the next request refreshes at /oauth2/token first.
    time.sleep(max(0.0, signed_in + 3.0 - time.monotonic()))
    b.hops()
    b.d.refresh()
    b.expect_hops([("GET", C + target, 200)])
    eq(b.echo()["identity"].get("x-auth-username"), "Okta_alice@example.com", "still signed in after the refresh")
    eq([e["grant_type"] for e in provider_events("token")], ["authorization_code", "refresh_token"], "the reload refreshed the session at the provider's token endpoint")

    # Sign-out: the session ends here and at the provider, back on the sign-in page.
    b.go(C + "/_auth/sign-out")
    b.submit({})
    eq(b.url(), C + "/_auth/sign-in", "back from the provider's /logout")
    got = b.hops()
    eq([(h["method"], h["url"].split("?")[0], h["status"]) for h in got], [
        ("POST", C + "/_auth/sign-out", 303),
        ("GET", OIDC + "/logout", 302),
        ("GET", C + "/_auth/sign-in", 200),
    ], "sign-out's document requests")
    eq([e["ok"] for e in provider_events("logout")], [True], "the provider's /logout accepted the sign-out URL")
    eq(len(provider_events("revoke")), 1, "the session's refresh token was revoked")
    check(b.cookie() is None, "no session cookie after sign-out")
    b.go(C + target)
    eq(b.url(), sign_in_url(C, target), "signed out: sign-in again")
    b.submit({}, button="a.provider[href*='provider=Okta']")
    check(b.url().startswith(OIDC + "/login/"), "the provider asks again (its session ended too)", b.url())


def federated_cancel_and_a_replayed_callback_are_refused(b):
    """Cancel at the provider -> the sign-in page with a generic message; a callback URL used
    a second time -> the sign-in page saying the sign-in expired, no new session."""
    b.clear_cookies()
    target = "/reports"
    b.go(sign_in_url(C, target))
    b.submit({}, button="a.provider[href*='provider=Google']")
    eq(b.text("#title"), "Sign in with Google", "the provider's page")
    b.submit({}, button="#cancel")
    check(b.url().startswith(C + "/_auth/callback?error=access_denied"), "back at the callback", b.url())
    eq(b.text("#error"), NOT_COMPLETED, "the generic message")
    eq(b.el("input[name=return]").get_attribute("value"), target, "the return path is kept")
    check(b.cookie() is None, "no session")

    b.submit({}, button="a.provider[href*='provider=Okta']")
    b.submit({"#username": "bob@example.com", "#password": FED_PASSWORD}, button="#sign-in")
    eq(b.url(), C + target, "signed in")
    callback = next(h["url"] for h in b.hops() if h["url"].startswith(C + "/_auth/callback?"))
    b.clear_cookies()
    b.go(callback)
    eq(b.text("#error"), EXPIRED, "a replayed callback is refused")
    check(b.cookie() is None, "no session from a replayed callback")


def federated_sign_ins_refused():
    return metric(ADMIN_C, 'sidecar_session_federated_sign_ins_total{outcome="state_invalid"}')


def federated_forged_state_is_refused(b):
    """A callback with a state the sidecar never issued: the sign-in page saying the sign-in
    expired, no session, and the provider's token endpoint never called."""
    b.clear_cookies()
    http("POST", f"{OIDC}/_test/reset")
    refused = federated_sign_ins_refused()
    forged = f"{C}/_auth/callback?code=x&state={secrets.token_urlsafe(32)}"
    b.go(forged)
    b.expect_hops([("GET", forged, 400)])
    eq(b.text("h1"), "Sign in", "the sign-in page")
    eq(b.text("#error"), EXPIRED, "a forged state is refused")
    eq(b.el("input[name=return]").get_attribute("value"), "/", "no return path from a forged state")
    check(b.cookie() is None, "no session from a forged state")
    eq(provider_events("token"), [], "no code exchange at the provider")
    eq(federated_sign_ins_refused() - refused, 1, "counted as state_invalid")


def federated_callback_from_another_browsers_flow_is_refused(b):
    """The flow-binding cookie of the browser that started the sign-in is missing at the
    callback (another browser follows the callback URL), or is another flow's: the state is
    refused (and spent), no session, no code exchange."""
    target = "/reports/other"

    def start_at_the_provider():
        b.go(sign_in_url(C, target))
        b.submit({}, button="a.provider[href*='provider=Okta']")
        check(b.url().startswith(OIDC + "/login/"), "at the provider's sign-in page", b.url())
        got = b.d.execute_cdp_cmd("Network.getCookies", {"urls": [C + "/"]})["cookies"]
        binding = next((c for c in got if c["name"] == FLOW_COOKIE), None)
        check(binding is not None, "the flow's binding cookie is set", got)
        eq((binding["secure"], binding["httpOnly"], binding["sameSite"]), (True, True, "Lax"), "its attributes")
        return binding["value"]

    def sign_in_at_the_provider_and_expect_a_refusal(what):
        refused = federated_sign_ins_refused()
        b.submit({"#username": "carol@example.com", "#password": FED_PASSWORD}, button="#sign-in")
        check(b.url().startswith(C + "/_auth/callback?"), f"{what}: back at the callback", b.url())
        hop = [h for h in b.hops() if h["url"].startswith(C + "/_auth/callback?")]
        eq([h["status"] for h in hop], [400], f"{what}: the callback's status")
        eq(b.text("#error"), EXPIRED, f"{what}: refused")
        check(b.cookie() is None, f"{what}: no session")
        eq(provider_events("token"), [], f"{what}: no code exchange at the provider")
        eq(federated_sign_ins_refused() - refused, 1, f"{what}: counted as state_invalid")
        return hop[0]["url"]

    def plant(value):
        b.d.execute_cdp_cmd(
            "Network.setCookie",
            {
                "name": FLOW_COOKIE,
                "value": value,
                "url": C + "/",
                "path": "/",
                "secure": True,
                "httpOnly": True,
                "sameSite": "Lax",
            },
        )

    # The callback reaches a browser without the binding cookie.
    b.clear_cookies()
    http("POST", f"{OIDC}/_test/reset")
    own = start_at_the_provider()
    b.d.execute_cdp_cmd("Network.deleteCookies", {"name": FLOW_COOKIE, "url": C + "/"})
    callback = sign_in_at_the_provider_and_expect_a_refusal("without the binding cookie")
    # Refused, and spent: with the browser's own cookie back, the same callback is refused too.
    plant(own)
    b.go(callback)
    eq(b.text("#error"), EXPIRED, "the refused callback's state is spent")
    eq(provider_events("token"), [], "still no code exchange")

    # The binding cookie of another flow (an attacker's own, planted): refused as well.
    b.clear_cookies()
    other = start_at_the_provider()
    b.clear_cookies()
    start_at_the_provider()
    plant(other)
    sign_in_at_the_provider_and_expect_a_refusal("with another flow's binding cookie")

    # Control: the same steps with the browser's own cookie sign in.
    b.clear_cookies()
    start_at_the_provider()
    b.submit({"#username": "carol@example.com", "#password": FED_PASSWORD}, button="#sign-in")
    eq(b.url(), C + target, "with its own binding cookie the flow signs in")
    eq(b.echo()["identity"].get("x-auth-username"), "Okta_carol@example.com", "the identity at the app")


SCENARIOS = [
    sign_in_lands_on_the_original_page,
    temporary_password_goes_through_the_new_password_page,
    reload_after_the_refresh_margin_refreshes_once,
    sign_out_ends_the_session_on_both_sidecars,
    cross_site_form_post_is_refused,
    return_path_to_another_site_lands_on_root,
    forgotten_password_is_reset_and_signs_in,
    mfa_setup_from_the_key_on_the_page,
    federated_sign_in_and_sign_out_through_the_provider,
    federated_cancel_and_a_replayed_callback_are_refused,
    federated_forged_state_is_refused,
    federated_callback_from_another_browsers_flow_is_refused,
]


def main():
    only = set(sys.argv[1:])
    unknown = only - {s.__name__ for s in SCENARIOS}
    if unknown:
        print(f"no such scenario: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    started = time.monotonic()
    driver = make_driver()
    print(f"browser: {driver.capabilities.get('browserVersion')} via chromedriver", flush=True)
    b = Browser(driver)
    failed = []
    try:
        for scenario in SCENARIOS:
            name = scenario.__name__
            if only and name not in only:
                continue
            t0 = time.monotonic()
            try:
                scenario(b)
            except Exception as e:  # noqa: BLE001 (report every failure, go on)
                failed.append(name)
                print(f"FAIL {name} ({time.monotonic() - t0:.1f} s): {e}", flush=True)
                if not isinstance(e, Failure):
                    traceback.print_exc()
                try:
                    print(f"     on {b.url()}", flush=True)
                    driver.save_screenshot(os.path.join(WORK, f"failed-{name}.png"))
                    with open(os.path.join(WORK, f"failed-{name}.html"), "w") as f:
                        f.write(driver.page_source)
                except Exception:  # noqa: BLE001
                    pass
            else:
                print(f"ok   {name} ({time.monotonic() - t0:.1f} s)", flush=True)
    finally:
        driver.quit()
    ran = len([s for s in SCENARIOS if not only or s.__name__ in only])
    print(
        f"browser tests: {ran - len(failed)} passed, {len(failed)} failed "
        f"({time.monotonic() - started:.1f} s)",
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
