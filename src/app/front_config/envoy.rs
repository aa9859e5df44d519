//! Envoy's static bootstrap: `ext_authz` over HTTP, the routes and the headers it clears.

use super::{header_comment, Out, Plan};

use std::net::IpAddr;

// === Envoy ===

pub(super) fn envoy_cluster(o: &mut Out, name: &str, host: &str, port: u16) {
    let kind = if host.parse::<IpAddr>().is_ok() {
        "STATIC"
    } else {
        "STRICT_DNS"
    };
    o.line(format!("    - name: {name}"));
    o.line(format!("      type: {kind}"));
    o.line("      connect_timeout: 1s");
    o.line("      load_assignment:");
    o.line(format!("        cluster_name: {name}"));
    o.line("        endpoints:");
    o.line("          - lb_endpoints:");
    o.line(format!(
        "              - endpoint: {{ address: {{ socket_address: {{ address: \"{host}\", port_value: {port} }} }} }}"
    ));
}

pub(super) fn envoy(p: &Plan) -> String {
    let mut o = Out(String::new());
    header_comment(
        &mut o,
        p,
        "Envoy (v3 API) in front of the app (ext_authz HTTP service)",
    );
    o.line(
        "# A static bootstrap: envoy -c envoy.yaml. With App Mesh or ECS Service Connect the same",
    );
    o.line("# ext_authz filter goes in the listener they generate.");
    o.line("#");
    o.line("# What Envoy sends the check: the original method, path_prefix + the original path and query,");
    o.line("# the original Host, Authorization, and the headers in allowed_headers. The answer: 200 → the");
    o.line("# request goes on with the identity headers of the answer (every header of the sidecar's map,");
    o.line("# empty when the token has no such claim, so they overwrite the client's own); anything else →");
    o.line("# the sidecar's status and body go to the client, with the headers in allowed_client_headers.");
    o.line("");
    o.line("static_resources:");
    o.line("  listeners:");
    o.line("    - name: ingress");
    o.line("      address:");
    o.line(format!(
        "        socket_address: {{ address: \"{}\", port_value: {} }}",
        p.listen.ip(),
        p.listen.port()
    ));
    o.line("      filter_chains:");
    o.line("        - filters:");
    o.line("            - name: envoy.filters.network.http_connection_manager");
    o.line("              typed_config:");
    o.line("                \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager");
    o.line("                stat_prefix: ingress");
    o.line("                # Envoy appends the client's address to X-Forwarded-For; the sidecar (trusting");
    o.line(
        "                # Envoy) reads it from the right, so a client cannot choose its address.",
    );
    o.line("                use_remote_address: true");
    o.line("                # The sidecar judges the path the app will receive: Envoy must not rewrite it");
    o.line(
        "                # (the sidecar refuses a path that is not canonical, as its gate does).",
    );
    o.line("                normalize_path: false");
    o.line("                merge_slashes: false");
    o.line("                path_with_escaped_slashes_action: KEEP_UNCHANGED");
    o.line(
        "                # WebSocket only (upstream.upgrades): any other Upgrade is not honoured.",
    );
    o.line("                upgrade_configs:");
    for u in &p.upgrades {
        o.line(format!("                  - upgrade_type: {u}"));
    }
    if p.upgrades.is_empty() {
        o.line("                  []");
    }
    o.line("                common_http_protocol_options:");
    o.line("                  # A client's X_Auth_Sub (read as X-Auth-Sub by some app servers) never passes.");
    o.line("                  headers_with_underscores_action: DROP_HEADER");
    o.line("                route_config:");
    o.line("                  virtual_hosts:");
    o.line("                    - name: app");
    o.line("                      domains: [\"*\"]");
    o.line("                      routes:");
    o.line("                        # The sidecar's own pages and login API: no check.");
    for prefix in &p.own_prefixes {
        o.line(format!(
            "                        - match: {{ prefix: \"{prefix}\" }}"
        ));
        o.line("                          route: { cluster: sidecar }");
        o.line("                          typed_per_filter_config:");
        o.line("                            envoy.filters.http.ext_authz:");
        o.line("                              \"@type\": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute");
        o.line("                              disabled: true");
    }
    o.line("                        - match: { prefix: \"/\" }");
    o.line("                          route: { cluster: app }");
    o.line("                          # upstream.never_forward and X-Forwarded-Host: headers some app servers");
    o.line(
        "                          # re-route, re-method or re-address a request by. Envoy writes",
    );
    o.line(
        "                          # X-Forwarded-For and -Proto itself. It passes names with `.`",
    );
    o.line("                          # (x.real.ip): the app must not read those spellings.");
    o.line("                          request_headers_to_remove:");
    for h in &p.cleared {
        if matches!(h.as_str(), "x-forwarded-for" | "x-forwarded-proto") {
            continue;
        }
        o.line(format!("                            - {h}"));
    }
    o.line("                http_filters:");
    o.line("                  - name: envoy.filters.http.ext_authz");
    o.line("                    typed_config:");
    o.line("                      \"@type\": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz");
    o.line("                      transport_api_version: V3");
    o.line(
        "                      # The sidecar unreachable: refuse, never let the request through.",
    );
    o.line("                      failure_mode_allow: false");
    o.line("                      http_service:");
    o.line("                        server_uri:");
    o.line(format!(
        "                          uri: \"http://{}\"",
        p.check
    ));
    o.line("                          cluster: sidecar_check");
    o.line("                          timeout: 2s");
    o.line(format!(
        "                        path_prefix: {}",
        p.check_path
    ));
    o.line("                        authorization_request:");
    o.line("                          # Besides Host, :method, :path, Content-Length and Authorization,");
    o.line("                          # which Envoy always sends: what browser sessions need.");
    o.line("                          allowed_headers:");
    o.line("                            patterns:");
    for h in [
        "cookie",
        "accept",
        "sec-fetch-mode",
        "sec-fetch-site",
        "origin",
        "referer",
        "upgrade",
        "x-request-id",
    ] {
        o.line(format!("                              - exact: {h}"));
    }
    o.line("                        authorization_response:");
    o.line(
        "                          # Every header of the identity map, as the check answers it.",
    );
    o.line("                          allowed_upstream_headers:");
    o.line("                            patterns:");
    for h in &p.identity {
        o.line(format!(
            "                              - exact: {}",
            h.to_ascii_lowercase()
        ));
    }
    o.line("                          allowed_client_headers:");
    o.line("                            patterns:");
    for h in [
        "www-authenticate",
        "location",
        "set-cookie",
        "content-type",
        "cache-control",
    ] {
        o.line(format!("                              - exact: {h}"));
    }
    o.line("                  - name: envoy.filters.http.router");
    o.line("                    typed_config:");
    o.line("                      \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router");
    o.line("");
    o.line("  clusters:");
    envoy_cluster(
        &mut o,
        "sidecar_check",
        &p.check.ip().to_string(),
        p.check.port(),
    );
    envoy_cluster(
        &mut o,
        "sidecar",
        &p.sidecar.ip().to_string(),
        p.sidecar.port(),
    );
    envoy_cluster(&mut o, "app", &p.app_host, p.app_port);
    o.0
}
