//! nginx in front of the app with `auth_request` (a whole `nginx.conf`).

use super::{header_comment, host_port, re_escape, var, Out, Plan, NGINX_COOKIE_STEPS};

pub(super) fn nginx(p: &Plan) -> String {
    let mut o = Out(String::new());
    header_comment(&mut o, p, "nginx in front of the app (auth_request)");
    o.line(format!(
        "#   client ─▶ nginx {} ── auth_request {} ──▶ sidecar check {}",
        p.listen, p.check_path, p.check
    ));
    o.line(format!(
        "#                 ├─ {} ─▶ sidecar {}",
        p.own_prefixes.join(", "),
        p.sidecar
    ));
    o.line(format!(
        "#                 └─ everything else, if the check said 200 ─▶ app {}",
        host_port(&p.app_host, p.app_port)
    ));
    o.line("#");
    o.line("# tests/forward_auth.rs runs what this command prints for its own addresses in a real");
    o.line("# nginx in front of an echo app. Start: nginx -p <dir> -c <this file> (relative paths");
    o.line("# below are under <dir>).");
    o.line("");
    o.line("worker_processes 1;");
    o.line("pid nginx.pid;");
    o.line("error_log stderr warn;");
    o.line("");
    o.line("events {");
    o.line("    worker_connections 1024;");
    o.line("}");
    o.line("");
    o.line("http {");
    o.line("    access_log off;");
    o.line("    client_body_temp_path tmp/body;");
    o.line("    proxy_temp_path tmp/proxy;");
    o.line("    fastcgi_temp_path tmp/fastcgi;");
    o.line("    uwsgi_temp_path tmp/uwsgi;");
    o.line("    scgi_temp_path tmp/scgi;");
    o.line("");
    o.line(
        "    # nginx's defaults, stated because the app relies on them: a client header whose name",
    );
    o.line(
        "    # holds `_` or `.` (X_Auth_Sub, x.auth.sub, X_Real_IP: names some app servers read as",
    );
    o.line(
        "    # X-Auth-Sub, X-Real-IP) is dropped, never passed on; so only the spellings with `-`",
    );
    o.line("    # need clearing below.");
    o.line("    underscores_in_headers off;");
    o.line("    ignore_invalid_headers on;");
    o.line("");
    o.line("    upstream app {");
    o.line(format!(
        "        server {};",
        host_port(&p.app_host, p.app_port)
    ));
    o.line("        keepalive 32;");
    o.line("    }");
    o.line("    # The sidecar's main listener: sign-in pages and the login API.");
    o.line("    upstream sidecar {");
    o.line(format!("        server {};", p.sidecar));
    o.line("        keepalive 8;");
    o.line("    }");
    o.line(
        "    # The sidecar's check listener (forward_auth.listen), reachable only from this task.",
    );
    o.line("    upstream sidecar_check {");
    o.line(format!("        server {};", p.check));
    o.line("        keepalive 32;");
    o.line("    }");
    o.line("");
    nginx_upgrade_maps(&mut o, p);
    let app_cookie = nginx_cookie_maps(&mut o, p);
    o.line("    server {");
    o.line(format!("        listen {};", p.listen));
    o.line(
        "        # Redirects as the sidecar wrote them (a path on this host), not made absolute.",
    );
    o.line("        absolute_redirect off;");
    o.line("");
    o.line("        # The check. `internal`: a client asking for it gets 404, only auth_request reaches");
    o.line("        # it. What the sidecar reads: X-Original-Method, X-Original-URI (the raw");
    o.line(
        "        # $request_uri, never nginx's normalized $uri: the sidecar refuses what is not",
    );
    o.line("        # canonical, as its gate does), Host, Upgrade (a WebSocket opened with the session");
    o.line(
        "        # cookie must come from an allowed Origin; Connection stays empty, the check is a",
    );
    o.line(
        "        # plain request), and the client's own headers (Authorization, Cookie, Accept,",
    );
    o.line("        # Sec-Fetch-*, Origin, Referer), which a subrequest carries.");
    o.line(format!("        location = {} {{", p.check_path));
    o.line("            internal;");
    o.line("            proxy_pass http://sidecar_check;");
    o.line("            proxy_http_version 1.1;");
    o.line("            proxy_pass_request_body off;");
    o.line("            proxy_set_header Content-Length \"\";");
    o.line("            proxy_set_header Connection \"\";");
    o.line("            proxy_set_header Upgrade $http_upgrade;");
    o.line("            proxy_set_header Host $http_host;");
    o.line("            proxy_set_header X-Original-Method $request_method;");
    o.line("            proxy_set_header X-Original-URI $request_uri;");
    o.line("        }");
    o.line("");
    o.line("        # The sidecar's own pages (sign-in, new-password, sign-out) and login API: no check.");
    o.line("        # X-Forwarded-For is replaced, never passed on: the sidecar trusts this nginx, so a");
    o.line("        # client's own header would choose the address its login rate limits count.");
    for prefix in &p.own_prefixes {
        o.line(format!("        location {prefix} {{"));
        o.line("            proxy_pass http://sidecar;");
        o.line("            proxy_http_version 1.1;");
        o.line("            proxy_set_header Connection \"\";");
        o.line("            proxy_set_header Host $http_host;");
        o.line("            proxy_set_header X-Forwarded-For $remote_addr;");
        o.line("            proxy_set_header X-Forwarded-Proto $scheme;");
        o.line("        }");
    }
    o.line("");
    o.line("        location / {");
    if !p.cookies.is_empty() {
        o.line(format!(
            "            # More than {NGINX_COOKIE_STEPS} of the sidecar's cookies in one request (a browser sends at"
        ));
        o.line("            # most 2): refused, never passed with one left in.");
        o.line("            if ($sidecar_cookie_left) {");
        o.line("                return 400;");
        o.line("            }");
    }
    o.line(format!("            auth_request {};", p.check_path));
    o.line("            # The sidecar's answer: every header of its identity map (empty when the token has");
    o.line("            # no such claim), the sign-in page for a browser, and the refusal's code.");
    for h in &p.identity {
        o.line(format!(
            "            auth_request_set $auth_{v} $upstream_http_{v};",
            v = var(h)
        ));
    }
    o.line("            auth_request_set $auth_location $upstream_http_location;");
    o.line("            auth_request_set $auth_code $upstream_http_x_sidecar_code;");
    o.line("            error_page 401 = @unauthorized;");
    o.line("            error_page 403 = @forbidden;");
    o.line("");
    o.line("            proxy_pass http://app;");
    o.line("            proxy_http_version 1.1;");
    o.line("            # An upgrade the sidecar would pass (upstream.upgrades) goes on with its Upgrade and");
    o.line("            # Connection: upgrade; anything else is plain HTTP to a kept-alive connection.");
    o.line("            proxy_set_header Upgrade $app_upgrade;");
    o.line("            proxy_set_header Connection $app_connection;");
    o.line("            proxy_set_header Host $http_host;");
    if let Some(c) = &app_cookie {
        o.line(format!("            proxy_set_header Cookie {c};"));
    }
    o.line("            # Set, or cleared when empty: a client-sent identity header of the map never passes.");
    for h in &p.identity {
        o.line(format!(
            "            proxy_set_header {h} $auth_{};",
            var(h)
        ));
    }
    o.line(
        "            # What the sidecar itself writes: the client's address, the scheme, the host.",
    );
    o.line("            proxy_set_header X-Forwarded-For $remote_addr;");
    o.line("            proxy_set_header X-Forwarded-Proto $scheme;");
    o.line("            proxy_set_header X-Forwarded-Host $http_host;");
    o.line("            # upstream.never_forward: headers some app servers re-route, re-method or re-address");
    o.line(
        "            # a request by (the sidecar's gate removes them; here nginx must): cleared.",
    );
    for h in &p.cleared {
        if matches!(
            h.as_str(),
            "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-host"
        ) {
            continue;
        }
        o.line(format!("            proxy_set_header {h} \"\";"));
    }
    o.line("        }");
    o.line("");
    o.line("        # A browser navigation without a session: the sidecar's Location (its sign-in page,");
    o.line("        # returning to this path). Anything else: the sidecar's 401, as JSON.");
    o.line("        location @unauthorized {");
    o.line("            default_type application/json;");
    o.line("            if ($auth_location) {");
    o.line("                return 302 $auth_location;");
    o.line("            }");
    o.line("            return 401 '{\"message\":\"authentication required\",\"code\":\"$auth_code\"}';");
    o.line("        }");
    o.line("        location @forbidden {");
    o.line("            default_type application/json;");
    o.line("            return 403 '{\"message\":\"not allowed\",\"code\":\"$auth_code\"}';");
    o.line("        }");
    o.line("    }");
    o.line("}");
    o.0
}

/// `$app_upgrade` (the client's `Upgrade`, or empty) and `$app_connection` (`upgrade`, or
/// empty), by the sidecar's rule: a `GET` over HTTP/1.1 without a body, `Connection`
/// naming `upgrade`, one protocol of `upstream.upgrades`.
pub(super) fn nginx_upgrade_maps(o: &mut Out, p: &Plan) {
    o.line("    # WebSocket (upstream.upgrades), by the sidecar's own rule: a GET over HTTP/1.1 without");
    o.line("    # a body, Connection naming upgrade, Upgrade one allowed protocol. Anything else (h2c,");
    o.line("    # which would let a client talk to the app past the check) goes on as plain HTTP.");
    o.line("    map \"$request_method|$server_protocol|$http_content_length$http_transfer_encoding|$http_connection|$http_upgrade\" $app_upgrade {");
    o.line("        default \"\";");
    if !p.upgrades.is_empty() {
        let alts = p
            .upgrades
            .iter()
            .map(|u| re_escape(u))
            .collect::<Vec<_>>()
            .join("|");
        o.line(format!(
            "        \"~*^GET\\|HTTP/1\\.1\\|0?\\|(?:[^|]*,)?\\s*upgrade\\s*(?:,[^|]*)?\\|\\s*(?:{alts})\\s*$\" $http_upgrade;"
        ));
    }
    o.line("    }");
    o.line("    # Empty, not `close`, for a plain request: the app's connections stay kept alive.");
    o.line("    map $app_upgrade $app_connection {");
    o.line("        default upgrade;");
    o.line("        \"\" \"\";");
    o.line("    }");
    o.line("");
}

/// The chain of maps that removes every one of the sidecar's cookies from `Cookie`; returns
/// the variable of the result (`None` with browser sessions off: nothing to remove).
pub(super) fn nginx_cookie_maps(o: &mut Out, p: &Plan) -> Option<String> {
    if p.cookies.is_empty() {
        return None;
    }
    let names = p
        .cookies
        .iter()
        .map(|c| re_escape(c))
        .collect::<Vec<_>>()
        .join("|");
    let [first, later, left] = cookie_patterns(&names);
    o.line(
        "    # The sidecar's cookies never reach the app (its own gate removes them too). A `map`",
    );
    o.line("    # rewrites one match, so each map removes one of them (named as the sidecar reads");
    o.line(
        "    # a pair: between `;`s, blanks around the name ignored), and the next map the next:",
    );
    o.line(format!(
        "    # {NGINX_COOKIE_STEPS} in all. Several Cookie headers arrive joined by \"; \" in $http_cookie."
    ));
    let mut from = "$http_cookie".to_string();
    for step in 1..=NGINX_COOKIE_STEPS {
        let to = format!("$app_cookie_{step}");
        o.line(format!("    map {from} {to} {{"));
        o.line(format!("        default {from};"));
        o.line(format!("        \"~{first}\" \"$rest\";"));
        o.line(format!("        \"~{later}\" \"$head$tail\";"));
        o.line("    }");
        from = to;
    }
    o.line("    # One still there: more than the chain removes.");
    o.line(format!("    map {from} $sidecar_cookie_left {{"));
    o.line("        default \"\";");
    o.line(format!("        \"~{left}\" 1;"));
    o.line("    }");
    o.line("");
    Some(from)
}

/// The nginx `map` regexes for the sidecar's cookies (`names`: an alternation): the first
/// pair (`rest` after it), a later pair (`head` before it, `tail` after), and any pair left.
/// A pair is named as the sidecar reads it: between `;`s, blanks around the name ignored.
pub(super) fn cookie_patterns(names: &str) -> [String; 3] {
    let pair = format!("\\s*(?:{names})\\s*(?:=[^;]*)?");
    [
        format!("^{pair}(?:;\\s*|$)(?<rest>.*)$"),
        format!("^(?<head>.*?)\\s*;{pair}(?<tail>(?:;.*)?)$"),
        format!("(?:^|;){pair}(?:;|$)"),
    ]
}

// === Traefik ===
