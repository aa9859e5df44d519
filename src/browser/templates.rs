//! The pages' HTML and CSS (built in, or loaded from `session.templates_dir`), escaping and
//! rendering, and the security headers every page carries. No I/O but the template loader.

use std::path::Path;

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use http::{Response, StatusCode};

use crate::http::body::{full, Body};

use super::session;

/// No script (Cognito's fingerprint script and its helper only with
/// `session.device_fingerprint`), no framing, forms only to this origin.
pub(crate) const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' https:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The pages' policy with one more origin a form may end on (CSP `form-action` also covers
/// the redirects after a submission): the sign-out form, which continues to the pool's
/// domain's `/logout` for a federated session. `origin` is validated at start-up.
pub(crate) fn csp_with_form_target(origin: &str) -> HeaderValue {
    let origin: String = origin
        .chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, ';' | ',' | '\'' | '"'))
        .collect();
    HeaderValue::from_str(&CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {origin}"),
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(CSP))
}

pub(crate) const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}\
main{max-width:22rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;\
box-shadow:0 1px 4px rgba(0,0,0,.12)}h1{font-size:1.4rem;margin:0 0 1rem}\
label{display:block;margin:.8rem 0 .3rem;font-weight:600}\
input{width:100%;box-sizing:border-box;padding:.55rem;font-size:1rem;border:1px solid #8a93a6;border-radius:4px}\
input:focus,button:focus{outline:3px solid #2d6cdf;outline-offset:1px}\
button{margin-top:1.2rem;width:100%;padding:.65rem;font-size:1rem;border:0;border-radius:4px;\
background:#2d6cdf;color:#fff;cursor:pointer}\
.error{background:#fdecea;color:#8a1c12;border:1px solid #f5c2bd;padding:.6rem;border-radius:4px}\
.hint{color:#4b5468;font-size:.9rem}.logo{max-width:8rem;display:block;margin-bottom:1rem}\
.links{margin-top:1rem;text-align:center}a{color:#2d6cdf}\
a.provider{display:block;margin:.6rem 0;padding:.6rem;text-align:center;border:1px solid #8a93a6;\
border-radius:4px;color:#1d2330;text-decoration:none;font-weight:600}a.provider:focus{outline:3px solid #2d6cdf}\
.or{text-align:center;color:#4b5468;margin:1rem 0 0}\
button.secondary{margin-top:.6rem;background:#fff;color:#2d6cdf;border:1px solid #2d6cdf}.qr svg{display:block;margin:0 auto;width:12rem;height:12rem}\
code{word-break:break-all;font-size:1rem}fieldset{border:0;padding:0;margin:.8rem 0}\
fieldset label{font-weight:400;display:flex;gap:.5rem;align-items:center}fieldset input{width:auto}";

pub(crate) const SIGN_IN: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}}</title>
<link rel="stylesheet" href="{{prefix}}/style.css">
</head>
<body>
<main>
{{logo}}
<h1>{{title}}</h1>
{{error}}
{{providers}}
<form method="post" action="{{prefix}}/sign-in">
<input type="hidden" name="csrf" value="{{csrf}}">
<input type="hidden" name="return" value="{{return}}">
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required autofocus value="{{email}}"{{invalid}}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required{{invalid}}>
{{fingerprint}}
<button type="submit">Sign in</button>
{{codes}}
</form>
{{forgot}}
</main>
</body>
</html>
"#;

pub(crate) const NEW_PASSWORD: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Choose a new password · {{title}}</title>
<link rel="stylesheet" href="{{prefix}}/style.css">
</head>
<body>
<main>
{{logo}}
<h1>Choose a new password</h1>
<p class="hint">Your account was created with a temporary password. Choose the password you will sign in with from now on.</p>
{{error}}
<form method="post" action="{{prefix}}/new-password">
<input type="hidden" name="csrf" value="{{csrf}}">
<input type="hidden" name="return" value="{{return}}">
<input type="hidden" name="email" value="{{email}}">
<input type="hidden" name="session" value="{{session}}">
{{policy}}
<label for="new_password">New password</label>
<input id="new_password" name="new_password" type="password" autocomplete="new-password" required autofocus{{invalid}}>
<label for="confirm_password">New password again</label>
<input id="confirm_password" name="confirm_password" type="password" autocomplete="new-password" required{{invalid}}>
{{fingerprint}}
<button type="submit">Set password and sign in</button>
</form>
</main>
</body>
</html>
"#;

pub(crate) const MFA: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Verification code · {{title}}</title>
<link rel="stylesheet" href="{{prefix}}/style.css">
</head>
<body>
<main>
{{logo}}
<h1>Verification code</h1>
<p class="hint">{{hint}}</p>
{{error}}
<form method="post" action="{{prefix}}/mfa">
<input type="hidden" name="csrf" value="{{csrf}}">
<input type="hidden" name="return" value="{{return}}">
<input type="hidden" name="email" value="{{email}}">
<input type="hidden" name="username" value="{{username}}">
<input type="hidden" name="challenge" value="{{challenge}}">
<input type="hidden" name="session" value="{{session}}">
<label for="code">Code</label>
<input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required autofocus{{invalid}}>
{{fingerprint}}
<button type="submit">Verify</button>
</form>
</main>
</body>
</html>
"#;

pub(crate) const SIGN_OUT: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign out · {{title}}</title>
<link rel="stylesheet" href="{{prefix}}/style.css">
</head>
<body>
<main>
{{logo}}
<h1>Sign out</h1>
{{error}}
<form method="post" action="{{prefix}}/sign-out">
<input type="hidden" name="csrf" value="{{csrf}}">
<button type="submit" autofocus>Sign out</button>
</form>
</main>
</body>
</html>
"#;

pub(crate) const FORGOT_PASSWORD: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Forgot your password? · {{title}}</title>
<link rel="stylesheet" href="{{prefix}}/style.css">
</head>
<body>
<main>
{{logo}}
<h1>Forgot your password?</h1>
<p class="hint">Enter the email you sign in with. If there is an account for it, we will send it a code to choose a new password.</p>
{{error}}
<form method="post" action="{{prefix}}/forgot-password">
<input type="hidden" name="csrf" value="{{csrf}}">
<input type="hidden" name="return" value="{{return}}">
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required autofocus value="{{email}}"{{invalid}}>
<button type="submit">Send a code</button>
</form>
<p class="links"><a href="{{prefix}}/sign-in?return={{return_query}}">Back to sign-in</a></p>
</main>
</body>
</html>
"#;

pub(crate) const RESET_PASSWORD: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Choose a new password · {{title}}</title>
<link rel="stylesheet" href="{{prefix}}/style.css">
</head>
<body>
<main>
{{logo}}
<h1>Choose a new password</h1>
<p class="hint">If there is an account for {{email}}, a code is on its way to it. Enter the code and the password you will sign in with from now on.</p>
{{error}}
<form method="post" action="{{prefix}}/reset-password">
<input type="hidden" name="csrf" value="{{csrf}}">
<input type="hidden" name="return" value="{{return}}">
<input type="hidden" name="email" value="{{email}}">
<label for="code">Code</label>
<input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required autofocus{{invalid}}>
{{policy}}
<label for="new_password">New password</label>
<input id="new_password" name="new_password" type="password" autocomplete="new-password" required{{invalid}}>
<label for="confirm_password">New password again</label>
<input id="confirm_password" name="confirm_password" type="password" autocomplete="new-password" required{{invalid}}>
<button type="submit">Set password and sign in</button>
</form>
<p class="links"><a href="{{prefix}}/forgot-password?return={{return_query}}">Send another code</a></p>
</main>
</body>
</html>
"#;

pub(crate) const MFA_SETUP: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Set up your authenticator app · {{title}}</title>
<link rel="stylesheet" href="{{prefix}}/style.css">
</head>
<body>
<main>
{{logo}}
<h1>Set up your authenticator app</h1>
<p class="hint">This account needs a second step at sign-in. Scan the code with an authenticator app, or enter the key by hand, then enter the 6-digit code the app shows.</p>
<div class="qr">{{qr}}</div>
<p class="hint">Key: <code id="secret">{{secret}}</code></p>
{{error}}
<form method="post" action="{{prefix}}/mfa-setup">
<input type="hidden" name="csrf" value="{{csrf}}">
<input type="hidden" name="return" value="{{return}}">
<input type="hidden" name="email" value="{{email}}">
<input type="hidden" name="username" value="{{username}}">
<input type="hidden" name="session" value="{{session}}">
<input type="hidden" name="secret" value="{{secret}}">
<label for="code">Code from the app</label>
<input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required autofocus{{invalid}}>
{{fingerprint}}
<button type="submit">Verify and sign in</button>
</form>
</main>
</body>
</html>
"#;

pub(crate) const SELECT_MFA: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Choose how to verify · {{title}}</title>
<link rel="stylesheet" href="{{prefix}}/style.css">
</head>
<body>
<main>
{{logo}}
<h1>Choose how to verify</h1>
{{error}}
<form method="post" action="{{prefix}}/mfa">
<input type="hidden" name="csrf" value="{{csrf}}">
<input type="hidden" name="return" value="{{return}}">
<input type="hidden" name="email" value="{{email}}">
<input type="hidden" name="username" value="{{username}}">
<input type="hidden" name="challenge" value="{{challenge}}">
<input type="hidden" name="session" value="{{session}}">
<fieldset>
<legend>Send or show me a code with</legend>
{{choices}}
</fieldset>
{{fingerprint}}
<button type="submit" autofocus>Continue</button>
</form>
</main>
</body>
</html>
"#;

/// The pages' templates, built in or from `session.templates_dir`.
#[derive(Debug, Clone)]
pub struct Templates {
    pub(crate) sign_in: String,
    pub(crate) new_password: String,
    pub(crate) mfa: String,
    pub(crate) sign_out: String,
    pub(crate) forgot_password: String,
    pub(crate) reset_password: String,
    pub(crate) mfa_setup: String,
    pub(crate) select_mfa: String,
}

impl Templates {
    /// The built-in pages, each replaced by `<dir>/<name>.html` when that file exists.
    pub fn load(dir: Option<&str>) -> Result<Self, String> {
        let read = |name: &str, builtin: &str| -> Result<String, String> {
            let Some(dir) = dir else {
                return Ok(builtin.to_string());
            };
            let path = Path::new(dir).join(name);
            match std::fs::read_to_string(&path) {
                Ok(t) => Ok(t),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(builtin.to_string()),
                Err(e) => Err(format!("{}: {e}", path.display())),
            }
        };
        Ok(Templates {
            sign_in: read("sign-in.html", SIGN_IN)?,
            new_password: read("new-password.html", NEW_PASSWORD)?,
            mfa: read("mfa.html", MFA)?,
            sign_out: read("sign-out.html", SIGN_OUT)?,
            forgot_password: read("forgot-password.html", FORGOT_PASSWORD)?,
            reset_password: read("reset-password.html", RESET_PASSWORD)?,
            mfa_setup: read("mfa-setup.html", MFA_SETUP)?,
            select_mfa: read("select-mfa.html", SELECT_MFA)?,
        })
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// Fills `{{name}}` placeholders: `vars` escaped, `raw` as given (built by the sidecar).
pub(crate) fn render(template: &str, vars: &[(&str, &str)], raw: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (k, v) in raw {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), &escape(v));
    }
    out
}

pub(crate) fn html_response(
    status: StatusCode,
    html: String,
    new_csrf: Option<String>,
) -> Response<Body> {
    let mut resp = Response::new(full(html));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(h);
    if let Some(t) = new_csrf {
        h.append(SET_COOKIE, session::csrf_cookie(&t));
    }
    resp
}

pub(crate) fn secure_headers(h: &mut http::HeaderMap) {
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
}

pub(crate) fn style() -> Response<Body> {
    let mut resp = Response::new(full(STYLE));
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    resp
}

/// The error paragraph (announced to screen readers) and the fields' invalid markers.
pub(crate) fn error_parts(error: Option<&str>) -> (String, &'static str) {
    match error {
        Some(msg) => {
            let mut m = escape(msg);
            if let Some(first) = m.get(..1) {
                m = first.to_uppercase() + &m[1..];
            }
            (
                format!(r#"<p id="error" class="error" role="alert">{m}</p>"#),
                r#" aria-invalid="true" aria-describedby="error""#,
            )
        }
        None => (String::new(), ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_rendering() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
        );
        let out = render(
            "<p>{{a}}</p>{{raw}}<i>{{a}}</i>{{none}}",
            &[("a", "<b>")],
            &[("raw", "<hr>")],
        );
        assert_eq!(out, "<p>&lt;b&gt;</p><hr><i>&lt;b&gt;</i>{{none}}");
        // A value cannot smuggle a placeholder that is filled later.
        let out = render("{{a}}{{b}}", &[("a", "{{b}}"), ("b", "x")], &[]);
        assert!(out == "{{b}}x" || out == "xx", "{out}");
        let (html, invalid) = error_parts(Some("incorrect email or password"));
        assert!(html.contains(r#"role="alert""#) && html.contains("Incorrect email"));
        assert!(invalid.contains("aria-describedby"));
        assert_eq!(error_parts(None), (String::new(), ""));
    }

    #[test]
    fn built_in_templates_have_their_placeholders_and_no_script() {
        for (t, needs) in [
            (
                SIGN_IN,
                &[
                    "csrf",
                    "return",
                    "email",
                    "error",
                    "title",
                    "prefix",
                    "codes",
                    "fingerprint",
                ][..],
            ),
            (
                NEW_PASSWORD,
                &["csrf", "return", "email", "session", "error", "fingerprint"][..],
            ),
            (
                MFA,
                &[
                    "csrf",
                    "return",
                    "email",
                    "username",
                    "challenge",
                    "session",
                    "hint",
                    "fingerprint",
                ][..],
            ),
            (SIGN_OUT, &["csrf", "error", "prefix"][..]),
            (FORGOT_PASSWORD, &["csrf", "return", "email", "error"][..]),
            (
                RESET_PASSWORD,
                &["csrf", "return", "email", "error", "policy"][..],
            ),
            (
                MFA_SETUP,
                &[
                    "csrf",
                    "return",
                    "email",
                    "username",
                    "session",
                    "secret",
                    "qr",
                    "fingerprint",
                ][..],
            ),
            (
                SELECT_MFA,
                &[
                    "csrf",
                    "return",
                    "email",
                    "username",
                    "challenge",
                    "session",
                    "choices",
                    "fingerprint",
                ][..],
            ),
        ] {
            for n in needs {
                assert!(t.contains(&format!("{{{{{n}}}}}")), "{n}");
            }
            assert!(!t.to_ascii_lowercase().contains("<script"));
            assert!(t.contains(r#"<html lang="en">"#) && t.contains("autofocus"));
        }
        for t in [
            SIGN_IN,
            NEW_PASSWORD,
            MFA,
            FORGOT_PASSWORD,
            RESET_PASSWORD,
            MFA_SETUP,
        ] {
            // Every visible input has its label.
            let inputs = t.matches("<input id=").count();
            assert_eq!(inputs, t.matches("<label for=").count());
        }
        assert!(SIGN_IN.contains(r#"name="email""#) && SIGN_IN.contains(r#"name="password""#));
        // The forms that set a password ask for it twice.
        for t in [NEW_PASSWORD, RESET_PASSWORD] {
            assert!(
                t.contains(r#"name="new_password""#) && t.contains(r#"name="confirm_password""#)
            );
        }
    }
}
