//! Helpers for the tests of the sidecar's pages (tests/sessions.rs, tests/pages.rs): a
//! sidecar with browser sessions over a moto pool and an echo app, a cookie-less client that
//! shows redirects, form posts, and readers of cookies and hidden fields.

use std::time::Duration;

use cognito_sidecar::config::Config;
use reqwest::header::{HeaderMap, HeaderValue};

use super::*;

pub const SIGN_IN: &str = "/_auth/sign-in";

pub struct Env {
    pub pool: Pool,
    pub sc: Sidecar,
    pub echo: Echo,
    pub user: String,
}

pub async fn env_with(tweak: impl FnOnce(&mut Config)) -> Env {
    let pool = Pool::create(false, false).await;
    let user = pool
        .confirmed_user(&format!("browser-{}@example.com", uuid_like()), &["staff"])
        .await;
    let echo = Echo::start().await;
    let mut c = pool.config(&echo.url());
    c.session.enabled = true;
    tweak(&mut c);
    let sc = Sidecar::start(c).await;
    Env {
        pool,
        sc,
        echo,
        user,
    }
}

/// A client that shows redirects instead of following them, and keeps no cookies.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

pub fn set_cookies(h: &HeaderMap) -> Vec<String> {
    h.get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_string())
        .collect()
}

/// The value of cookie `name` set by a response.
pub fn set_cookie_value(h: &HeaderMap, name: &str) -> Option<String> {
    set_cookies(h).into_iter().find_map(|c| {
        let first = c.split(';').next()?.to_string();
        let (k, v) = first.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// The value of the hidden form field `name` in a page.
pub fn field(html: &str, name: &str) -> Option<String> {
    let needle = format!(r#"name="{name}" value=""#);
    let start = html.find(&needle)? + needle.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}

pub fn nav_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("sec-fetch-mode", HeaderValue::from_static("navigate"));
    h.insert("sec-fetch-site", HeaderValue::from_static("none"));
    h.insert("accept", HeaderValue::from_static("text/html"));
    h
}

/// GET the sign-in page: its CSRF token (cookie and field agree) and the page.
pub async fn sign_in_page(sc: &Sidecar, ret: &str) -> (String, String) {
    let resp = browser()
        .get(sc.url(&format!("{SIGN_IN}?return={}", url_encode(ret))))
        .send()
        .await
        .expect("page");
    assert_eq!(resp.status(), 200);
    let csrf = set_cookie_value(resp.headers(), "__Host-sidecar-csrf").expect("csrf cookie");
    let html = resp.text().await.expect("html");
    assert_eq!(field(&html, "csrf").as_deref(), Some(csrf.as_str()));
    (csrf, html)
}

pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub async fn post_form(
    sc: &Sidecar,
    path: &str,
    cookies: &str,
    pairs: &[(&str, &str)],
) -> reqwest::Response {
    browser()
        .post(sc.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookies)
        .header("sec-fetch-site", "same-origin")
        .header("origin", format!("http://{}", sc.addr))
        .body(form(pairs))
        .send()
        .await
        .expect("post")
}

/// Signs in through the pages; returns the session cookie value.
pub async fn sign_in(sc: &Sidecar, user: &str, password: &str, ret: &str) -> String {
    let (csrf, _) = sign_in_page(sc, ret).await;
    let resp = post_form(
        sc,
        SIGN_IN,
        &format!("__Host-sidecar-csrf={csrf}"),
        &[
            ("csrf", &csrf),
            ("email", user),
            ("password", password),
            ("return", ret),
        ],
    )
    .await;
    assert_eq!(resp.status(), 303, "{:?}", resp.text().await);
    set_cookie_value(resp.headers(), "__Host-sidecar-session").expect("session cookie")
}

pub async fn get_with(
    sc: &Sidecar,
    path: &str,
    cookie: &str,
    extra: HeaderMap,
) -> reqwest::Response {
    browser()
        .get(sc.url(path))
        .header("cookie", cookie)
        .headers(extra)
        .send()
        .await
        .expect("get")
}

pub fn metric(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
