//! Traefik's dynamic configuration: the ForwardAuth middleware and the headers it clears.

use super::{header_comment, host_port, spelling_re, Out, Plan};

use crate::http::headers::fold_name;

/// Traefik's `authResponseHeadersRegex`: every spelling of the identity namespace
/// (`identity.strip_prefixes`) and of each identity header outside it.
pub(super) fn traefik_identity_regex(p: &Plan) -> String {
    let mut alts: Vec<String> = p
        .strip_prefixes
        .iter()
        .map(|prefix| spelling_re(prefix))
        .collect();
    for h in &p.identity {
        let folded = fold_name(h);
        if !p
            .strip_prefixes
            .iter()
            .any(|s| folded.starts_with(s.as_str()))
        {
            alts.push(format!("{}$", spelling_re(&folded)));
        }
    }
    match alts.as_slice() {
        [one] => format!("(?i)^{one}"),
        _ => format!("(?i)^(?:{})", alts.join("|")),
    }
}

pub(super) fn traefik(p: &Plan) -> String {
    let mut o = Out(String::new());
    header_comment(
        &mut o,
        p,
        "Traefik (v2.x / v3.x) in front of the app (ForwardAuth)",
    );
    o.line(
        "# This is Traefik's *dynamic* configuration (file provider); the static one only needs an",
    );
    o.line("# entry point and this file, for example:");
    o.line("#");
    o.line(format!(
        "#   entryPoints: {{ web: {{ address: \"{}\" }} }}",
        p.listen
    ));
    o.line("#   providers: { file: { filename: /etc/traefik/dynamic.yml } }");
    o.line("#");
    o.line("# What Traefik sends the check (a GET to `address`): X-Forwarded-Method, -Proto, -Host, -Uri");
    o.line("# (the original request's, raw), -For, and every header of the original request");
    o.line("# (Authorization, Cookie, Accept, Sec-Fetch-*, Origin, Referer). What it does with the answer:");
    o.line("# 2xx → the request goes on, with the headers `authResponseHeadersRegex` matches copied from");
    o.line("# the answer after removing the client's own; anything else → the sidecar's answer goes to the");
    o.line("# client as is (401 with WWW-Authenticate, 403, 400 for a path or method the gate refuses, 302");
    o.line("# to the sign-in page for a browser without a session).");
    o.line("");
    o.line("http:");
    o.line("  middlewares:");
    o.line("    cognito-sidecar:");
    o.line("      forwardAuth:");
    o.line(format!(
        "        address: \"http://{}{}\"",
        p.check, p.check_path
    ));
    o.line("        # Never true: with it, a client's own X-Forwarded-Uri / -Method would be the");
    o.line("        # \"original request\" the sidecar judges, not the one Traefik routes.");
    o.line("        trustForwardHeader: false");
    o.line("        # The sidecar answers every header of its identity map (empty when the token has no such");
    o.line(
        "        # claim). The regex also removes the client's own spellings of them (X_Auth_Sub,",
    );
    o.line("        # x.auth.sub, which some app servers read as X-Auth-Sub) before copying.");
    o.line(format!(
        "        authResponseHeadersRegex: \"{}\"",
        traefik_identity_regex(p).replace('\\', "\\\\")
    ));
    o.line("    # upstream.never_forward: headers some app servers re-route, re-method or re-address a");
    o.line("    # request by (the sidecar's gate removes them; here Traefik must). An empty value removes");
    o.line("    # the header. Traefik writes X-Forwarded-For, -Proto and -Host itself. It passes names");
    o.line("    # with `_` or `.` (X_Real_IP): the app must not read those spellings.");
    o.line("    cognito-sidecar-clear:");
    o.line("      headers:");
    o.line("        customRequestHeaders:");
    for h in &p.cleared {
        if matches!(
            h.as_str(),
            "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-host"
        ) {
            continue;
        }
        o.line(format!("          {h}: \"\""));
    }
    o.line("");
    o.line("  routers:");
    o.line(
        "    # The sidecar's own pages (sign-in, new-password, sign-out) and login API: no check.",
    );
    o.line("    sidecar-pages:");
    o.line("      entryPoints: [web]");
    o.line(format!(
        "      rule: \"{}\"",
        p.own_prefixes
            .iter()
            .map(|x| format!("PathPrefix(`{x}`)"))
            .collect::<Vec<_>>()
            .join(" || ")
    ));
    o.line("      priority: 100");
    o.line("      service: sidecar");
    o.line("    app:");
    o.line("      entryPoints: [web]");
    o.line("      rule: \"PathPrefix(`/`)\"");
    o.line("      priority: 1");
    o.line("      middlewares: [cognito-sidecar-clear, cognito-sidecar]");
    o.line("      service: app");
    o.line("");
    o.line("  services:");
    o.line("    app:");
    o.line("      loadBalancer:");
    o.line("        servers:");
    o.line(format!(
        "          - url: \"http://{}\"",
        host_port(&p.app_host, p.app_port)
    ));
    o.line("    sidecar:");
    o.line("      loadBalancer:");
    o.line("        servers:");
    o.line(format!("          - url: \"http://{}\"", p.sidecar));
    o.0
}
