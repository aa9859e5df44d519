//! The pool's managed-login domain for the federated sign-in tests: the oidc-provider
//! stand-in of `tests/oidc/` (Cognito's routes, PKCE S256 required, Cognito-shaped tokens),
//! started on a free loopback port through `tests/oidc/start.sh` (which runs `npm ci` from
//! the committed lockfile the first time), and stopped when dropped. Also a minimal cookie
//! jar, since the flow crosses two origins.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use std::time::Duration;

use cognito_sidecar::config::Config;
use serde_json::Value;
use tokio::net::TcpListener;

use super::browser::{browser, form, nav_headers, set_cookie_value};
use super::{closed_url, Echo, Sidecar};

/// The users of `tests/oidc/provider.mjs` share one password.
pub const FED_PASSWORD: &str = "Fed3rated!pass";
/// The pool id the provider's issuer ends with.
pub const FED_POOL: &str = "us-east-1_Federated";

pub struct Provider {
    /// `http://127.0.0.1:<port>`: the domain.
    pub url: String,
    /// The `iss` of its tokens (`<url>/us-east-1_Federated`); the JWKS is under it.
    pub issuer: String,
    pid: String,
    dir: PathBuf,
}

/// What the provider is told about its one app client.
pub struct ClientSetup<'a> {
    pub client_id: &'a str,
    pub secret: Option<&'a str>,
    pub redirect_uris: &'a [String],
    pub logout_uris: &'a [String],
    pub access_ttl: u64,
}

/// One `npm ci` at a time (the tests of a binary start providers in parallel).
static START: Mutex<()> = Mutex::new(());

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl Provider {
    pub fn start(c: &ClientSetup<'_>) -> Provider {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let issuer = format!("{url}/{FED_POOL}");
        let dir = std::env::temp_dir().join(format!(
            "cognito-sidecar-oidc-{port}-{}",
            super::uuid_like()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let pidfile = dir.join("provider.pid");
        let logfile = dir.join("provider.log");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/start.sh");
        let mut cmd = std::process::Command::new(script);
        cmd.arg(port.to_string())
            .arg(&pidfile)
            .arg(&logfile)
            .env("OIDC_ISSUER", &issuer)
            .env("OIDC_CLIENT_ID", c.client_id)
            .env("OIDC_REDIRECT_URIS", c.redirect_uris.join(","))
            .env("OIDC_LOGOUT_URIS", c.logout_uris.join(","))
            .env("OIDC_ACCESS_TTL", c.access_ttl.to_string())
            .env_remove("OIDC_CLIENT_SECRET");
        if let Some(s) = c.secret {
            cmd.env("OIDC_CLIENT_SECRET", s);
        }
        let out = {
            let _one = START.lock().unwrap_or_else(|e| e.into_inner());
            cmd.output()
                .expect("run tests/oidc/start.sh (node and npm are needed)")
        };
        assert!(
            out.status.success(),
            "the OpenID provider did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pid = std::fs::read_to_string(&pidfile).expect("pidfile");
        Provider {
            url,
            issuer,
            pid: pid.trim().to_string(),
            dir,
        }
    }

    /// What the provider recorded (authorize, sign_in, token, logout, revoke, ...).
    pub async fn events(&self) -> Vec<Value> {
        reqwest::get(format!("{}/_test/events", self.url))
            .await
            .expect("events")
            .json()
            .await
            .expect("json")
    }

    /// The recorded events named `name`.
    pub async fn events_named(&self, name: &str) -> Vec<Value> {
        self.events()
            .await
            .into_iter()
            .filter(|e| e["event"] == name)
            .collect()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").arg(&self.pid).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Cookies by origin (`http://host:port`): enough for a flow across the sidecar and the
/// provider on loopback (paths and attributes are not looked at; `Max-Age=0` removes).
#[derive(Default, Clone)]
pub struct Jar {
    by_origin: BTreeMap<String, BTreeMap<String, String>>,
}

impl Jar {
    fn origin(url: &str) -> String {
        let u: reqwest::Url = url.parse().expect("url");
        format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().expect("host"),
            u.port_or_known_default().expect("port")
        )
    }

    pub fn store(&mut self, url: &str, headers: &reqwest::header::HeaderMap) {
        let jar = self.by_origin.entry(Self::origin(url)).or_default();
        for v in headers.get_all("set-cookie") {
            let v = v.to_str().expect("ascii");
            let Some((name, value)) = v.split(';').next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let gone = v
                .split(';')
                .any(|a| a.trim().eq_ignore_ascii_case("max-age=0"))
                || v.to_ascii_lowercase().contains("expires=thu, 01 jan 1970");
            if gone || value.is_empty() {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_string(), value.to_string());
            }
        }
    }

    pub fn header(&self, url: &str) -> String {
        self.by_origin
            .get(&Self::origin(url))
            .map(|c| {
                c.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    pub fn get(&self, url: &str, name: &str) -> Option<String> {
        self.by_origin.get(&Self::origin(url))?.get(name).cloned()
    }
}

// === A sidecar whose domain is the provider ===

pub const CLIENT: &str = "fedclient1";
pub const SECRET: &str = "fed-client-secret-1";
pub struct Fed {
    pub provider: Provider,
    pub sc: Sidecar,
    pub echo: Echo,
    pub callback: String,
    pub sign_out: String,
}

/// A sidecar whose first pool is the provider's, with Okta, Google and other ways offered.
pub async fn fed_env(secret: Option<&str>, tweak: impl FnOnce(&mut Config)) -> Fed {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let callback = format!("http://{addr}/_auth/callback");
    let sign_out = format!("http://{addr}/_auth/sign-in");
    let provider = Provider::start(&ClientSetup {
        client_id: CLIENT,
        secret,
        redirect_uris: std::slice::from_ref(&callback),
        logout_uris: std::slice::from_ref(&sign_out),
        access_ttl: 300,
    });
    let echo = Echo::start().await;
    let mut c = Config::default();
    c.cognito.user_pool_id = Some(FED_POOL.into());
    c.cognito.client_id = Some(CLIENT.into());
    c.cognito.client_secret = secret.map(Into::into);
    // No Cognito API call belongs to a federated sign-in.
    c.cognito.endpoint_url = Some(closed_url().await);
    c.verify.issuer = Some(provider.issuer.clone());
    c.verify.jwks_url = Some(format!("{}/.well-known/jwks.json", provider.issuer));
    c.upstream.url = echo.url();
    c.server.shutdown_grace = Duration::from_secs(2);
    c.session.enabled = true;
    let m = &mut c.session.managed_login;
    m.domain = Some(provider.url.clone());
    m.callback_url = Some(callback.clone());
    m.identity_providers = vec!["Okta".into(), "Google".into()];
    m.other_ways = true;
    tweak(&mut c);
    let sc = Sidecar::start_on(c, listener, true).await;
    Fed {
        provider,
        sc,
        echo,
        callback,
        sign_out,
    }
}

pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .expect("location")
        .to_str()
        .expect("ascii")
        .to_string()
}

/// GET with the jar's cookies for `url`, storing what the answer sets.
pub async fn get(jar: &mut Jar, url: &str) -> reqwest::Response {
    let resp = browser()
        .get(url)
        .header("cookie", jar.header(url))
        .headers(nav_headers())
        .send()
        .await
        .expect("get");
    jar.store(url, resp.headers());
    resp
}

/// From `start` (a sidecar path) through the provider's sign-in as `user` to the callback
/// URL the provider sends the browser back to, which is returned, not followed.
pub async fn through_provider(f: &Fed, jar: &mut Jar, start: &str, user: &str) -> String {
    let resp = get(jar, &f.sc.url(start)).await;
    assert_eq!(resp.status(), 303, "{start}");
    let mut next = location(&resp);
    assert!(
        next.starts_with(&format!("{}/oauth2/authorize?", f.provider.url)),
        "{next}"
    );
    for _ in 0..10 {
        if next.starts_with(&f.callback) {
            return next;
        }
        let resp = get(jar, &next).await;
        let here: reqwest::Url = next.parse().expect("url");
        if resp.status().is_redirection() {
            next = here.join(&location(&resp)).expect("join").to_string();
            continue;
        }
        assert_eq!(resp.status(), 200, "{next}");
        let html = resp.text().await.expect("html");
        assert!(html.contains(r#"id="sign-in-form""#), "{html}");
        let post = browser()
            .post(next.as_str())
            .header("cookie", jar.header(&next))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("username", user), ("password", FED_PASSWORD)]))
            .send()
            .await
            .expect("sign in at the provider");
        jar.store(&next, post.headers());
        assert_eq!(post.status(), 303, "provider sign-in");
        next = here.join(&location(&post)).expect("join").to_string();
    }
    panic!("the provider never sent the browser back");
}

/// The callback in the browser of `jar`: (status, Location or page, session cookie).
pub async fn callback(jar: &mut Jar, url: &str) -> (u16, String, Option<String>) {
    let resp = get(jar, url).await;
    let status = resp.status().as_u16();
    let session = set_cookie_value(resp.headers(), "__Host-sidecar-session");
    let body = if resp.status().is_redirection() {
        location(&resp)
    } else {
        resp.text().await.expect("page")
    };
    (status, body, session.filter(|s| !s.is_empty()))
}
