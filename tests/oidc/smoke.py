#!/usr/bin/env python3
"""Browserless smoke test of tests/oidc/provider.mjs (Cognito managed login stand-in).

Usage: smoke.py [BASE_URL]

Reads the same environment as the provider:
  OIDC_BASE_URL       provider root, e.g. http://127.0.0.1:PORT (or argv[1];
                      default http://127.0.0.1:$OIDC_PORT)
  OIDC_ISSUER         expected `iss` (default: the base URL)
  OIDC_CLIENT_ID      required
  OIDC_CLIENT_SECRET  optional; when set the token endpoint is called with Basic auth
  OIDC_REDIRECT_URIS  comma-separated; the first one is used
  OIDC_LOGOUT_URIS    comma-separated; the first one is used (required)

Standard library only. Exits non-zero on the first failed check.
"""

import base64
import hashlib
import http.cookiejar
import json
import os
import re
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

PASSWORD = "Fed3rated!pass"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

checks = 0


def check(cond, what, detail=None):
    global checks
    checks += 1
    if not cond:
        msg = f"FAIL: {what}"
        if detail is not None:
            msg += f"\n      got: {detail!r}"
        print(msg, file=sys.stderr)
        sys.exit(1)
    print(f"ok   {what}")


def env_list(name):
    return [s.strip() for s in os.environ.get(name, "").split(",") if s.strip()]


BASE = (sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OIDC_BASE_URL")
        or f"http://127.0.0.1:{os.environ.get('OIDC_PORT', '')}").rstrip("/")
ISSUER = (os.environ.get("OIDC_ISSUER") or BASE).rstrip("/")
CLIENT_ID = os.environ.get("OIDC_CLIENT_ID") or sys.exit("OIDC_CLIENT_ID is required")
CLIENT_SECRET = os.environ.get("OIDC_CLIENT_SECRET") or None
REDIRECT_URI = (env_list("OIDC_REDIRECT_URIS") or [None])[0] or sys.exit("OIDC_REDIRECT_URIS is required")
LOGOUT_URI = (env_list("OIDC_LOGOUT_URIS") or [None])[0] or sys.exit("OIDC_LOGOUT_URIS is required")


# --------------------------------------------------------------------------
# HTTP without automatic redirects
# --------------------------------------------------------------------------

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    @property
    def location(self):
        return self.headers.get("Location")


class Browser:
    def __init__(self):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect())

    def request(self, method, url, form=None, headers=None):
        data = None
        hdrs = dict(headers or {})
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        hdrs.setdefault("Accept", "text/html,application/json")
        req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
        try:
            with self.opener.open(req, timeout=10) as r:
                return Response(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, e.headers, e.read())

    def get(self, url, **kw):
        return self.request("GET", url, **kw)

    def post(self, url, form=None, **kw):
        return self.request("POST", url, form=form if form is not None else {}, **kw)

    def follow(self, resp, limit=10):
        """Follow redirects until one points at the redirect_uri (not fetched) or a page answers."""
        for _ in range(limit):
            if resp.status not in (301, 302, 303, 307, 308):
                return resp, None
            target = urllib.parse.urljoin(BASE + "/", resp.location)
            if target.split("?")[0] == REDIRECT_URI:
                return resp, target
            resp = self.get(target)
        raise AssertionError("too many redirects")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def decode_jwt(token):
    h, p, s = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p)), b64url_decode(s), f"{h}.{p}".encode()


def rs256_verify(jwk, signing_input, signature):
    """RSASSA-PKCS1-v1_5 with SHA-256, standard library only."""
    n = int.from_bytes(b64url_decode(jwk["n"]), "big")
    e = int.from_bytes(b64url_decode(jwk["e"]), "big")
    k = (n.bit_length() + 7) // 8
    em = pow(int.from_bytes(signature, "big"), e, n).to_bytes(k, "big")
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(signing_input).digest()
    expected = b"\x00\x01" + b"\xff" * (k - len(digest_info) - 3) + b"\x00" + digest_info
    return em == expected


def query_of(url):
    return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).items()}


def pkce():
    verifier = b64url(secrets.token_bytes(32))
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


def authorize_url(**params):
    base = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
            "scope": "openid email profile"}
    base.update({k: v for k, v in params.items() if v is not None})
    return f"{BASE}/oauth2/authorize?" + urllib.parse.urlencode(base)


def client_auth(form):
    headers = {"Accept": "application/json"}
    if CLIENT_SECRET:
        cred = f"{urllib.parse.quote(CLIENT_ID, safe='')}:{urllib.parse.quote(CLIENT_SECRET, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
    else:
        form = dict(form, client_id=CLIENT_ID)
    return form, headers


def token_request(br, form):
    form, headers = client_auth(form)
    return br.post(f"{BASE}/oauth2/token", form=form, headers=headers)


def expect_authorize_error(br, what, error, **params):
    state = secrets.token_urlsafe(12)
    resp = br.get(authorize_url(state=state, **params))
    resp, target = br.follow(resp)
    check(target is not None, f"{what}: redirected back to redirect_uri", (resp.status, resp.text[:300]))
    q = query_of(target)
    check(q.get("error") == error and q.get("state") == state and "code" not in q,
          f"{what}: error={error} with state, no code", q)


def sign_in_page(br, resp, title):
    resp, target = br.follow(resp)
    check(target is None and resp.status == 200, f"authorize leads to the sign-in page ({title})",
          (resp.status, target))
    html = resp.text
    check(f">{title}<" in html, f"sign-in page is titled {title!r}")
    for element in ('id="username"', 'id="password"', 'id="sign-in"', 'id="cancel"',
                    'for="username"', 'for="password"'):
        check(element in html, f"sign-in page has {element}")
    action = re.search(r'<form id="sign-in-form" method="post" action="([^"]+)"', html).group(1)
    cancel = re.search(r'<form id="cancel-form" method="post" action="([^"]+)"', html).group(1)
    return urllib.parse.urljoin(BASE + "/", action), urllib.parse.urljoin(BASE + "/", cancel)


def main():
    print(f"provider {BASE} issuer {ISSUER} client {CLIENT_ID} "
          f"({'client_secret_basic' if CLIENT_SECRET else 'public, no secret'})")
    br = Browser()
    check(br.post(f"{BASE}/_test/reset").status == 204, "POST /_test/reset")

    # ---- discovery and JWKS ------------------------------------------------
    jwks_resp = br.get(f"{BASE}/.well-known/jwks.json")
    check(jwks_resp.status == 200, "GET /.well-known/jwks.json")
    jwks = jwks_resp.json()
    issuer_jwks = br.get(f"{ISSUER}/.well-known/jwks.json")
    check(issuer_jwks.status == 200 and issuer_jwks.json() == jwks, "JWKS also at <issuer>/.well-known/jwks.json")
    disco = br.get(f"{ISSUER}/.well-known/openid-configuration").json()
    check(disco["issuer"] == ISSUER, "discovery issuer", disco.get("issuer"))
    check(disco["authorization_endpoint"] == f"{BASE}/oauth2/authorize", "discovery authorization_endpoint")
    check(disco["token_endpoint"] == f"{BASE}/oauth2/token", "discovery token_endpoint")
    check(disco["userinfo_endpoint"] == f"{BASE}/oauth2/userInfo", "discovery userinfo_endpoint")
    check(disco["revocation_endpoint"] == f"{BASE}/oauth2/revoke", "discovery revocation_endpoint")
    check(disco["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json", "discovery jwks_uri under the issuer")
    check(disco["code_challenge_methods_supported"] == ["S256"], "discovery: PKCE S256 only")

    # ---- refused authorization requests ------------------------------------
    expect_authorize_error(br, "authorize without code_challenge", "invalid_request",
                           nonce="n0", identity_provider="Okta")
    _, plain = pkce()
    expect_authorize_error(br, "authorize with code_challenge_method=plain", "invalid_request",
                           nonce="n0", identity_provider="Okta", code_challenge=plain + "abcdefghij",
                           code_challenge_method="plain")
    _, ch = pkce()
    expect_authorize_error(br, "authorize with unknown identity_provider", "invalid_request",
                           nonce="n0", identity_provider="Nope", code_challenge=ch, code_challenge_method="S256")

    _, ch = pkce()
    expect_authorize_error(br, "authorize with a scope the client does not allow", "invalid_scope",
                           nonce="n0", identity_provider="Okta", code_challenge=ch, code_challenge_method="S256",
                           scope="openid email not-allowed")

    # ---- federated sign-in (identity_provider=Okta) -------------------------
    verifier, challenge = pkce()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    resp = br.get(authorize_url(state=state, nonce=nonce, identity_provider="Okta",
                                code_challenge=challenge, code_challenge_method="S256"))
    action, _ = sign_in_page(br, resp, "Sign in with Okta")

    bad = br.post(action, {"username": "alice@example.com", "password": "wrong"})
    check(bad.status == 200 and "Incorrect username or password." in bad.text and 'id="username"' in bad.text,
          "wrong password shows the form again with an error", bad.status)

    resp = br.post(action, {"username": "alice@example.com", "password": PASSWORD})
    check(resp.status == 303, "correct password: 303 back to the authorization endpoint", resp.status)
    resp, target = br.follow(resp)
    check(target is not None, "redirect chain ends at redirect_uri", (resp.status, resp.text[:300]))
    q = query_of(target)
    check(q.get("state") == state and q.get("code"), "callback carries code and the same state", sorted(q))
    code = q["code"]

    no_verifier = token_request(br, {"grant_type": "authorization_code", "code": code,
                                     "redirect_uri": REDIRECT_URI})
    check(no_verifier.status == 400 and no_verifier.json().get("error") == "invalid_grant",
          "token without code_verifier is refused (invalid_grant)", no_verifier.text)
    # oidc-provider consumes the code even on that failure; start again (the session makes it silent).
    verifier, challenge = pkce()
    state = secrets.token_urlsafe(16)
    resp = br.get(authorize_url(state=state, nonce=nonce, identity_provider="Okta",
                                code_challenge=challenge, code_challenge_method="S256"))
    resp, target = br.follow(resp)
    check(target is not None, "existing session: authorize goes straight back with a code")
    code = query_of(target)["code"]

    tok = token_request(br, {"grant_type": "authorization_code", "code": code,
                             "redirect_uri": REDIRECT_URI, "code_verifier": verifier})
    check(tok.status == 200, "authorization_code grant succeeds", tok.text)
    tokens = tok.json()
    check(set(tokens) == {"id_token", "access_token", "refresh_token", "expires_in", "token_type"},
          "token response has exactly id_token, access_token, refresh_token, expires_in, token_type", sorted(tokens))
    check(tokens["token_type"] == "Bearer", "token_type Bearer")
    now = int(time.time())

    keys = {k["kid"]: k for k in jwks["keys"]}
    id_header, idt, id_sig, id_input = decode_jwt(tokens["id_token"])
    at_header, at, at_sig, at_input = decode_jwt(tokens["access_token"])
    for name, header, sig, inp in (("id token", id_header, id_sig, id_input),
                                   ("access token", at_header, at_sig, at_input)):
        check(header.get("alg") == "RS256" and header.get("kid") in keys, f"{name}: RS256 with a kid from the JWKS",
              header)
        check(rs256_verify(keys[header["kid"]], inp, sig), f"{name}: signature verifies against the JWKS")

    print("id token payload:", json.dumps(idt, sort_keys=True))
    print("access token payload:", json.dumps(at, sort_keys=True))

    check(idt["iss"] == ISSUER, "id: iss is the issuer", idt["iss"])
    check(idt["aud"] == CLIENT_ID, "id: aud is the client id", idt["aud"])
    check(UUID_RE.match(idt["sub"]) is not None, "id: sub is a UUID", idt["sub"])
    check(idt["token_use"] == "id", "id: token_use id")
    check(idt["cognito:username"] == "Okta_alice@example.com", "id: cognito:username Okta_alice@example.com",
          idt.get("cognito:username"))
    check(idt["email"] == "alice@example.com" and idt["email_verified"] is True, "id: email, email_verified true")
    check(idt["nonce"] == nonce, "id: nonce as sent")
    check(isinstance(idt["auth_time"], int) and idt["auth_time"] <= now + 5, "id: auth_time")
    check(idt["cognito:groups"] == ["staff"], "id: cognito:groups [staff]", idt.get("cognito:groups"))
    ident = idt.get("identities")
    check(isinstance(ident, list) and len(ident) == 1 and ident[0] == {
        "userId": "alice@example.com", "providerName": "Okta", "providerType": "OIDC",
        "issuer": None, "primary": "true", "dateCreated": "1700000000000"}, "id: identities like Cognito's", ident)
    check(0 < idt["exp"] - idt["iat"] <= 3600 * 24, "id: exp after iat")
    at_hash = b64url(hashlib.sha256(tokens["access_token"].encode()).digest()[:16])
    check(idt.get("at_hash") == at_hash, "id: at_hash matches the access token")

    check(at["sub"] == idt["sub"], "access: same sub")
    check(at["token_use"] == "access", "access: token_use access")
    check(at["client_id"] == CLIENT_ID, "access: client_id")
    check(at["username"] == "Okta_alice@example.com", "access: username is the cognito:username")
    check(set(at["scope"].split(" ")) == {"openid", "email", "profile"}, "access: scope space-separated",
          at["scope"])
    check(at["iss"] == ISSUER, "access: iss is the issuer")
    check(all(isinstance(at.get(c), int) for c in ("exp", "iat", "auth_time")), "access: exp, iat, auth_time")
    check(at["exp"] - at["iat"] == tokens["expires_in"], "access: exp - iat == expires_in", tokens["expires_in"])
    check(isinstance(at.get("jti"), str) and at["jti"], "access: jti")
    check("aud" not in at, "access: no aud (as Cognito)")
    check(at["auth_time"] == idt["auth_time"], "access: auth_time equals the id token's")

    ui = br.get(f"{BASE}/oauth2/userInfo", headers={"Authorization": f"Bearer {tokens['access_token']}",
                                                    "Accept": "application/json"})
    check(ui.status == 200, "userInfo accepts the access token", ui.text)
    info = ui.json()
    check(info.get("sub") == at["sub"] and info.get("username") == "Okta_alice@example.com"
          and info.get("email") == "alice@example.com", "userInfo: sub, username, email", info)

    # ---- refresh ------------------------------------------------------------
    ref = token_request(br, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    check(ref.status == 200, "refresh_token grant succeeds", ref.text)
    refreshed = ref.json()
    check("id_token" in refreshed and "access_token" in refreshed, "refresh: new id_token and access_token")
    check("refresh_token" not in refreshed, "refresh: no new refresh token (not rotated, like Cognito)")
    _, rid, _, _ = decode_jwt(refreshed["id_token"])
    _, rat, _, _ = decode_jwt(refreshed["access_token"])
    check(refreshed["access_token"] != tokens["access_token"] and rat["jti"] != at["jti"], "refresh: a new access token")
    check(rid["cognito:username"] == idt["cognito:username"] and rid["sub"] == idt["sub"], "refresh: same user")
    check(rat["token_use"] == "access" and rid["token_use"] == "id", "refresh: token_use claims")
    again = token_request(br, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    check(again.status == 200, "refresh: the original refresh token still works", again.text)

    # A different identity provider needs a new sign-in despite the session.
    _, challenge = pkce()
    resp = br.get(authorize_url(state="s-google", nonce="n-google", identity_provider="Google",
                                code_challenge=challenge, code_challenge_method="S256"))
    sign_in_page(br, resp, "Sign in with Google")

    # ---- sign-out -------------------------------------------------------------
    wrong = br.get(f"{BASE}/logout?" + urllib.parse.urlencode(
        {"client_id": CLIENT_ID, "logout_uri": LOGOUT_URI + "/not-allowed"}))
    check(wrong.status == 400 and wrong.location is None and "<html" in wrong.text,
          "logout with a wrong logout_uri: 400 page, no redirect", wrong.status)
    bad_client = br.get(f"{BASE}/logout?" + urllib.parse.urlencode({"client_id": "other", "logout_uri": LOGOUT_URI}))
    check(bad_client.status == 400, "logout with a wrong client_id: 400", bad_client.status)
    out = br.get(f"{BASE}/logout?" + urllib.parse.urlencode({"client_id": CLIENT_ID, "logout_uri": LOGOUT_URI}))
    check(out.status == 302 and out.location == LOGOUT_URI, "logout: 302 to logout_uri", (out.status, out.location))

    # After sign-out the password is asked again; cancelling ends with access_denied.
    verifier, challenge = pkce()
    state = secrets.token_urlsafe(16)
    resp = br.get(authorize_url(state=state, nonce="n1", identity_provider="Okta",
                                code_challenge=challenge, code_challenge_method="S256"))
    _, cancel = sign_in_page(br, resp, "Sign in with Okta")
    resp, target = br.follow(br.post(cancel))
    check(target is not None, "cancel redirects back to redirect_uri")
    q = query_of(target)
    check(q.get("error") == "access_denied" and q.get("state") == state and "code" not in q,
          "cancel: error=access_denied with state", q)

    # ---- sign-in without identity_provider ----------------------------------
    verifier, challenge = pkce()
    state, nonce2 = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    resp = br.get(authorize_url(state=state, nonce=nonce2, code_challenge=challenge, code_challenge_method="S256"))
    action, _ = sign_in_page(br, resp, "Cognito managed login")
    resp, target = br.follow(br.post(action, {"username": "bob@example.com", "password": PASSWORD}))
    check(target is not None and query_of(target).get("state") == state, "bob signs in")
    tok = token_request(br, {"grant_type": "authorization_code", "code": query_of(target)["code"],
                             "redirect_uri": REDIRECT_URI, "code_verifier": verifier})
    check(tok.status == 200, "bob: token exchange", tok.text)
    _, bid, _, _ = decode_jwt(tok.json()["id_token"])
    _, bat, _, _ = decode_jwt(tok.json()["access_token"])
    check(bid["cognito:username"] == "bob@example.com" and bat["username"] == "bob@example.com",
          "no identity_provider: cognito:username is the email", bid.get("cognito:username"))
    check("identities" not in bid and "cognito:groups" not in bid, "no identity_provider: no identities, no groups")
    check(bid["sub"] != idt["sub"] and UUID_RE.match(bid["sub"]), "bob has his own sub")

    # ---- revocation -------------------------------------------------------------
    rev_form, rev_headers = client_auth({"token": tokens["refresh_token"]})
    rev = br.post(f"{BASE}/oauth2/revoke", form=rev_form, headers=rev_headers)
    check(rev.status == 200, "revoke the refresh token", rev.text)
    dead = token_request(br, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    check(dead.status == 400 and dead.json().get("error") == "invalid_grant", "revoked refresh token is refused")

    # ---- recorded events ----------------------------------------------------------
    events = br.get(f"{BASE}/_test/events").json()
    auth_mode = "basic" if CLIENT_SECRET else "none"
    expected = [
        {"event": "authorize", "identity_provider": "Okta", "scope": "openid email profile", "has_nonce": True,
         "code_challenge_method": None},
        {"event": "authorize", "identity_provider": "Okta", "scope": "openid email profile", "has_nonce": True,
         "code_challenge_method": "plain"},
        {"event": "authorize", "identity_provider": "Nope", "scope": "openid email profile", "has_nonce": True,
         "code_challenge_method": "S256"},
        {"event": "authorize", "identity_provider": "Okta", "scope": "openid email not-allowed", "has_nonce": True,
         "code_challenge_method": "S256"},
        {"event": "authorize", "identity_provider": "Okta", "scope": "openid email profile", "has_nonce": True,
         "code_challenge_method": "S256"},
        {"event": "sign_in_failed", "username": "alice@example.com", "identity_provider": "Okta"},
        {"event": "sign_in", "username": "alice@example.com", "identity_provider": "Okta",
         "cognito_username": "Okta_alice@example.com"},
        {"event": "token", "grant_type": "authorization_code", "client_auth": auth_mode, "has_code_verifier": False},
        {"event": "authorize", "identity_provider": "Okta", "scope": "openid email profile", "has_nonce": True,
         "code_challenge_method": "S256"},
        {"event": "token", "grant_type": "authorization_code", "client_auth": auth_mode, "has_code_verifier": True},
        {"event": "token", "grant_type": "refresh_token", "client_auth": auth_mode, "has_code_verifier": False},
        {"event": "token", "grant_type": "refresh_token", "client_auth": auth_mode, "has_code_verifier": False},
        {"event": "authorize", "identity_provider": "Google", "scope": "openid email profile", "has_nonce": True,
         "code_challenge_method": "S256"},
        {"event": "logout", "client_id": CLIENT_ID, "logout_uri": LOGOUT_URI + "/not-allowed", "ok": False},
        {"event": "logout", "client_id": "other", "logout_uri": LOGOUT_URI, "ok": False},
        {"event": "logout", "client_id": CLIENT_ID, "logout_uri": LOGOUT_URI, "ok": True},
        {"event": "authorize", "identity_provider": "Okta", "scope": "openid email profile", "has_nonce": True,
         "code_challenge_method": "S256"},
        {"event": "cancel", "identity_provider": "Okta"},
        {"event": "authorize", "identity_provider": None, "scope": "openid email profile", "has_nonce": True,
         "code_challenge_method": "S256"},
        {"event": "sign_in", "username": "bob@example.com", "identity_provider": None,
         "cognito_username": "bob@example.com"},
        {"event": "token", "grant_type": "authorization_code", "client_auth": auth_mode, "has_code_verifier": True},
        {"event": "token", "grant_type": "refresh_token", "client_auth": auth_mode, "has_code_verifier": False},
    ]
    if events != expected:
        for i, (got, want) in enumerate(zip(events, expected)):
            if got != want:
                print(f"event {i}: got {got}\n         want {want}", file=sys.stderr)
                break
    check(events == expected, f"/_test/events recorded all {len(expected)} events in order",
          events if events != expected else None)
    check(br.post(f"{BASE}/_test/reset").status == 204 and br.get(f"{BASE}/_test/events").json() == [],
          "POST /_test/reset clears the events")

    print(f"smoke: {checks} passed, 0 failed")


if __name__ == "__main__":
    try:
        main()
    except (AssertionError, KeyError, ValueError, OSError) as exc:
        print(f"FAIL: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
