//! The dashboards and alarms read what the sidecar really writes. A sidecar runs in this
//! process through the events they watch (a JWKS outage at start, Cognito answering garbage,
//! the app down, a refused request, the shared Redis coming and going); then
//!
//! - every metric a query of the Grafana dashboard (`deploy/grafana/cognito-sidecar.json`)
//!   names is a family its admin listener's `/metrics` declares (`# TYPE`), with the suffix that
//!   type exposes (`_total` for a counter, `_bucket`/`_sum`/`_count` for a histogram), counters
//!   under `rate`/`increase`, buckets under `histogram_quantile` by `le`; and every family has
//!   a panel;
//! - every metric filter of `deploy/cloudformation.yaml` matches a line the sidecar logged
//!   (JSON format, the shipped `log.level`) and names only fields those lines carry, a numeric
//!   `MetricValue` being a number in each;
//! - the CloudWatch dashboard and the alarms use only metrics those filters publish, and the
//!   dashboard's Logs Insights queries only fields the lines carry.
//!
//! One scenario test (the log capture is the process's global subscriber); the checkers are
//! also run on broken inputs, so each can be seen to fail.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cognito_sidecar::config::SharedBackend;
use common::cfn::{intrinsic, read_json, template, template_with};
use common::*;
use http::Response;
use http_body_util::Full;
use regex::Regex;
use serde_json::{json, Value as Json};

const GRAFANA: &str = "deploy/grafana/cognito-sidecar.json";
const OPERATIONS: &str = "docs/src/operations.md";

// === /metrics ===

/// The families the exposition declares, by name: their `# TYPE`.
fn families(exposition: &str) -> BTreeMap<String, String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.trim().to_owned()))
        .collect()
}

/// The value of the sample `name` (unlabelled) in an exposition.
fn sample(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// A sample name as PromQL writes it: its family and that family's type, or why not.
fn family_of<'a>(
    name: &str,
    families: &'a BTreeMap<String, String>,
) -> Result<(String, &'a str), String> {
    let suffixes: [(&str, &str); 4] = [
        ("counter", "_total"),
        ("histogram", "_bucket"),
        ("histogram", "_sum"),
        ("histogram", "_count"),
    ];
    if let Some(kind) = families.get(name) {
        return match kind.as_str() {
            "gauge" => Ok((name.to_owned(), "gauge")),
            other => Err(format!(
                "{name} is a {other}: its samples are {name}{}",
                if other == "counter" {
                    "_total"
                } else {
                    "_bucket/_sum/_count"
                }
            )),
        };
    }
    for (kind, suffix) in suffixes {
        if let Some((family, k)) = name
            .strip_suffix(suffix)
            .and_then(|f| families.get_key_value(f))
        {
            if k == kind {
                return Ok((family.clone(), k.as_str()));
            }
        }
    }
    Err(format!("{name}: the sidecar exposes no such metric"))
}

/// What is wrong with one PromQL expression (nothing: empty), and the families it uses.
fn check_promql(expr: &str, families: &BTreeMap<String, String>) -> (Vec<String>, Vec<String>) {
    let names = Regex::new(r"\bsidecar_[a-z0-9_]+").expect("regex");
    let (mut problems, mut used) = (Vec::new(), Vec::new());
    for m in names.find_iter(expr) {
        let before = expr[..m.start()].trim_end();
        let in_rate = before.ends_with("rate(") || before.ends_with("increase(");
        // A variable's label_values(series, label) reads labels, not values.
        let labels_only = before.ends_with("label_values(");
        match family_of(m.as_str(), families) {
            Err(e) => problems.push(e),
            Ok((family, kind)) => {
                let part = &m.as_str()[family.len()..];
                if (kind == "counter" || kind == "histogram") && !in_rate && !labels_only {
                    problems.push(format!(
                        "{} is cumulative: use rate() or increase()",
                        m.as_str()
                    ));
                }
                if kind == "gauge" && in_rate {
                    problems.push(format!("{} is a gauge: rate() means nothing", m.as_str()));
                }
                if part == "_bucket"
                    && !(expr.contains("histogram_quantile(") && expr.contains("le"))
                {
                    problems.push(format!("{}: histogram_quantile by le", m.as_str()));
                }
                used.push(family);
            }
        }
    }
    (problems, used)
}

/// Every PromQL expression of a Grafana dashboard (panel targets, rows included, and the
/// templating queries), with where it is.
fn grafana_exprs(dash: &Json) -> Vec<(String, String)> {
    fn panels(list: &Json, out: &mut Vec<(String, String)>) {
        for p in list.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?");
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((format!("panel {title:?} {}", t["refId"]), e.to_owned()));
                }
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dash["panels"], &mut out);
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"].as_str().or(v["query"].as_str());
        out.push((
            format!("variable {}", v["name"]),
            q.unwrap_or_default().to_owned(),
        ));
    }
    out
}

/// What is wrong with a Grafana dashboard given the exposed families.
/// The book's metrics table (`| \`name\` | type | labels |` rows) against the families
/// `/metrics` declares: the same names (a counter's row spelled with `_total`), the same types.
fn check_metrics_table(page: &str, families: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut documented = BTreeMap::new();
    for row in page.lines().filter(|l| l.starts_with("| `sidecar_")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (Some(name), Some(kind)) = (cells.get(1), cells.get(2)) else {
            problems.push(format!("a row without a type: {row}"));
            continue;
        };
        let name = name.trim_matches('`');
        let family = match *kind {
            "counter" => match name.strip_suffix("_total") {
                Some(f) => f,
                None => {
                    problems.push(format!("the counter {name} is spelled without _total"));
                    name
                }
            },
            _ => name,
        };
        documented.insert(family.to_string(), (name.to_string(), kind.to_string()));
    }
    for (family, (name, kind)) in &documented {
        match families.get(family) {
            None => problems.push(format!(
                "{name} is documented but /metrics has no such family"
            )),
            Some(k) if k != kind => problems.push(format!(
                "{name} is documented as a {kind}, /metrics says {k}"
            )),
            Some(_) => {}
        }
    }
    for (family, kind) in families {
        if !documented.contains_key(family) {
            problems.push(format!(
                "/metrics declares {family} ({kind}), the table does not"
            ));
        }
    }
    problems
}

fn check_grafana(dash: &Json, families: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (at, expr) in grafana_exprs(dash) {
        let (p, u) = check_promql(&expr, families);
        problems.extend(p.into_iter().map(|p| format!("{at}: {p}")));
        if u.is_empty() {
            problems.push(format!("{at}: no sidecar metric in {expr:?}"));
        }
        used.extend(u);
    }
    for family in families.keys().filter(|f| !used.contains(*f)) {
        problems.push(format!("{family}: no panel shows it"));
    }
    problems
}

// === CloudWatch Logs filter patterns ===

/// One `$.field op value` of a JSON filter pattern.
#[derive(Debug)]
struct Term {
    field: String,
    op: String,
    value: Json,
}

/// The terms of `{ $.a = "x" && $.b >= 500 }`: the subset of CloudWatch's JSON filter
/// syntax the template uses (`&&` of comparisons; a string may end in `*`). Anything else is
/// an error, so a pattern this test cannot read fails it rather than passing unchecked.
fn parse_pattern(pattern: &str) -> Result<Vec<Term>, String> {
    let body = pattern
        .trim()
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .ok_or_else(|| format!("{pattern:?}: not a JSON filter pattern"))?;
    let term = Regex::new(
        r#"^\s*\$\.([A-Za-z_][A-Za-z0-9_]*)\s*(=|!=|>=|<=|>|<)\s*("[^"]*"|-?[0-9.]+)\s*$"#,
    )
    .expect("regex");
    body.split("&&")
        .map(|t| {
            let c = term
                .captures(t)
                .ok_or_else(|| format!("{pattern:?}: cannot read {t:?}"))?;
            let value = serde_json::from_str(&c[3]).map_err(|e| format!("{t:?}: {e}"))?;
            Ok(Term {
                field: c[1].to_owned(),
                op: c[2].to_owned(),
                value,
            })
        })
        .collect()
}

fn term_matches(t: &Term, line: &Json) -> bool {
    let got = &line[&t.field];
    match (&t.value, got) {
        (Json::String(want), Json::String(got)) => {
            let eq = match want.strip_suffix('*') {
                Some(prefix) => got.starts_with(prefix),
                None => got == want,
            };
            match t.op.as_str() {
                "=" => eq,
                "!=" => !eq,
                _ => false,
            }
        }
        (Json::Number(want), Json::Number(got)) => {
            let (w, g) = (
                want.as_f64().unwrap_or(f64::NAN),
                got.as_f64().unwrap_or(f64::NAN),
            );
            match t.op.as_str() {
                "=" => g == w,
                "!=" => g != w,
                ">=" => g >= w,
                "<=" => g <= w,
                ">" => g > w,
                "<" => g < w,
                _ => false,
            }
        }
        _ => false,
    }
}

/// `{"!Sub": "text"}` or a plain string, with every `${X}` left as `<X>`.
fn sub_text(v: &Json) -> Option<String> {
    let text = match intrinsic(v) {
        Some(("Sub", Json::String(s))) => s.as_str(),
        _ => v.as_str()?,
    };
    Some(text.replace("${", "<").replace('}', ">"))
}

/// The resources of type `ty`: logical id (as lowered by `cfn::template`) and definition.
fn resources_of<'a>(t: &'a Json, ty: &str) -> Vec<(&'a String, &'a Json)> {
    t["resources"]
        .as_object()
        .expect("resources")
        .iter()
        .filter(|(_, r)| r["type"] == ty)
        .collect()
}

/// What is wrong with the template's metric filters given the sidecar's log lines, and the
/// (namespace, metric name) pairs they publish.
fn check_metric_filters(t: &Json, lines: &[Json]) -> (Vec<String>, BTreeSet<(String, String)>) {
    let (mut problems, mut published) = (Vec::new(), BTreeSet::new());
    for (id, f) in resources_of(t, "AWS::Logs::MetricFilter") {
        let p = &f["properties"];
        if intrinsic(&p["logGroupName"]) != Some(("Ref", &json!("LogGroup"))) {
            problems.push(format!("{id}: not on the sidecar's LogGroup"));
        }
        let pattern = p["filterPattern"].as_str().unwrap_or_default();
        let terms = match parse_pattern(pattern) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{id}: {e}"));
                continue;
            }
        };
        let matched: Vec<&Json> = lines
            .iter()
            .filter(|l| terms.iter().all(|t| term_matches(t, l)))
            .collect();
        if matched.is_empty() {
            problems.push(format!("{id}: {pattern} matches no line the sidecar wrote"));
        }
        for m in p["metricTransformations"].as_array().into_iter().flatten() {
            let value = m["metricValue"].as_str().unwrap_or_default();
            if let Some(field) = value.strip_prefix("$.") {
                for l in matched.iter().filter(|l| !l[field].is_number()) {
                    problems.push(format!("{id}: MetricValue {value} is not a number in {l}"));
                }
            } else if value.parse::<f64>().is_err() {
                problems.push(format!("{id}: MetricValue {value:?}"));
            }
            match (sub_text(&m["metricNamespace"]), m["metricName"].as_str()) {
                (Some(ns), Some(name)) => {
                    published.insert((ns, name.to_owned()));
                }
                _ => problems.push(format!("{id}: namespace and name")),
            }
        }
    }
    (problems, published)
}

// === The CloudWatch dashboard and alarms ===

/// The dashboard body as JSON: `Fn::Sub`'s variables (an `If` taken as resolved) substituted,
/// then every other `${X}` written `<X>`; and the `X`s that were not variables.
fn dashboard_body(t: &Json) -> (Json, BTreeSet<String>) {
    let (_, dash) = resources_of(t, "AWS::CloudWatch::Dashboard")
        .pop()
        .expect("a CloudWatch dashboard");
    let body = &dash["properties"]["dashboardBody"];
    let (mut text, vars) = match intrinsic(body) {
        Some(("Sub", Json::String(s))) => (s.clone(), serde_json::Map::new()),
        Some(("Sub", Json::Array(a))) => (
            a[0].as_str().expect("Sub's text").to_owned(),
            a[1].as_object().cloned().unwrap_or_default(),
        ),
        _ => panic!("DashboardBody is not a Fn::Sub: {body}"),
    };
    for (k, v) in vars {
        let v = match intrinsic(&v) {
            Some(("Sub", Json::String(s))) => s.clone(),
            _ => v.as_str().expect("a resolved Sub variable").to_owned(),
        };
        // cfn::template lowered the variable's first letter, as it does every key's.
        let mut c = k.chars();
        let name: String = c
            .next()
            .map(|f| f.to_uppercase().chain(c).collect())
            .unwrap_or_default();
        text = text.replace(&format!("${{{name}}}"), &v);
    }
    let refs = Regex::new(r"\$\{([^}]+)\}").expect("regex");
    let named = refs.captures_iter(&text).map(|c| c[1].to_owned()).collect();
    let text = refs.replace_all(&text, "<$1>");
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("DashboardBody is not JSON: {e}\n{text}"));
    (json, named)
}

/// Fields a Logs Insights query reads (`fields`, the statistics' arguments, filter
/// comparisons), `@`-fields left out.
fn insights_fields(query: &str) -> BTreeSet<String> {
    let compared =
        Regex::new(r"(?:^|[\s(])([a-z_][a-z0-9_]*)\s*(?:=|!=|>=|<=|<|>|\bin\b)").expect("regex");
    let stat = Regex::new(r"\b(?:pct|avg|max|min|sum|count)\(([a-z_][a-z0-9_]*)").expect("regex");
    let mut out = BTreeSet::new();
    for stage in query.split('|').map(str::trim) {
        if let Some(list) = stage.strip_prefix("fields ") {
            out.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|f| !f.starts_with('@'))
                    .map(str::to_owned),
            );
        } else if let Some(cond) = stage.strip_prefix("filter ") {
            out.extend(compared.captures_iter(cond).map(|c| c[1].to_owned()));
        } else if stage.starts_with("stats ") {
            out.extend(stat.captures_iter(stage).map(|c| c[1].to_owned()));
        }
    }
    out
}

/// What is wrong with the dashboard and the alarms, given what the filters publish and the
/// fields the lines carry.
fn check_cloudwatch(
    t: &Json,
    published: &BTreeSet<(String, String)>,
    fields: &BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let alarms: BTreeSet<String> = resources_of(t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(id, _)| id.clone())
        .collect();
    let (body, named) = dashboard_body(t);
    for n in &named {
        let id = n.split('.').next().unwrap_or_default();
        let lowered = common::cfn::lower_first(id);
        if !n.starts_with("AWS::") && t["resources"][&lowered].is_null() {
            problems.push(format!("dashboard: ${{{n}}} names no resource"));
        }
    }
    let mut shown = BTreeSet::new();
    for w in body["widgets"].as_array().expect("widgets") {
        let props = &w["properties"];
        match w["type"].as_str() {
            Some("metric") => {
                let mut last: Vec<Json> = Vec::new();
                for m in props["metrics"].as_array().into_iter().flatten() {
                    let m = m.as_array().expect("a metric is a list");
                    let at = |i: usize| match m.get(i) {
                        Some(Json::String(s)) if s == "." => last.get(i).cloned(),
                        other => other.cloned(),
                    };
                    let (ns, name) = (at(0), at(1));
                    let key = (
                        ns.as_ref().and_then(Json::as_str).unwrap_or("?").to_owned(),
                        name.as_ref()
                            .and_then(Json::as_str)
                            .unwrap_or("?")
                            .to_owned(),
                    );
                    if !published.contains(&key) {
                        problems.push(format!("dashboard: {key:?} is published by no filter"));
                    }
                    last = vec![ns.unwrap_or_default(), name.unwrap_or_default()];
                }
            }
            Some("alarm") => {
                for a in props["alarms"].as_array().into_iter().flatten() {
                    let id = a.as_str().and_then(|a| a.strip_prefix('<'));
                    let id = id.and_then(|a| a.strip_suffix(".Arn>")).unwrap_or("?");
                    let lowered = common::cfn::lower_first(id);
                    if !alarms.contains(&lowered) {
                        problems.push(format!("dashboard: {a} is not an alarm of the template"));
                    }
                    shown.insert(lowered);
                }
            }
            Some("log") => {
                let q = props["query"].as_str().unwrap_or_default();
                if !q.starts_with("SOURCE '<LogGroup>'") {
                    problems.push(format!("dashboard: {q:?} does not read the LogGroup"));
                }
                for f in insights_fields(q).difference(fields) {
                    problems.push(format!("dashboard: query field {f} is in no line: {q:?}"));
                }
            }
            _ => {}
        }
    }
    for (id, a) in resources_of(t, "AWS::CloudWatch::Alarm") {
        let p = &a["properties"];
        let key = (
            sub_text(&p["namespace"]).unwrap_or_default(),
            p["metricName"].as_str().unwrap_or_default().to_owned(),
        );
        if !published.contains(&key) {
            problems.push(format!("{id}: {key:?} is published by no filter"));
        }
        let threshold = match intrinsic(&p["threshold"]) {
            Some(("Ref", Json::String(param))) => &t["parameters"][common::cfn::lower_first(param)],
            _ => &Json::Null,
        };
        if threshold["type"] != "Number" || threshold["default"].is_null() {
            problems.push(format!(
                "{id}: Threshold is not a Number parameter with a default"
            ));
        }
        if p["treatMissingData"].as_str().is_none() {
            problems.push(format!("{id}: TreatMissingData not chosen"));
        }
        if !shown.contains(id) && a["condition"].is_null() {
            problems.push(format!("{id}: not on the dashboard's alarm widget"));
        }
    }
    problems
}

// === The scenario ===

/// Polls `f` every 20 ms, for 15 s at most.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..750 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A Cognito that answers every call with an HTML 500 (an `idp_error`).
async fn broken_cognito() -> (String, tokio::sync::oneshot::Sender<()>) {
    let (addr, stop) = serve_fn(Arc::new(|_req| {
        Box::pin(async {
            Response::builder()
                .status(500)
                .header("content-type", "text/html")
                .body(Full::new(Bytes::from_static(b"<html>500</html>")))
                .expect("resp")
        })
    }))
    .await;
    (format!("http://{addr}"), stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_alarms_use_only_what_the_sidecar_writes() {
    let capture = Capture::install_json(&cognito_sidecar::Config::default().log.level);
    let jwks = JwksServer::start().await;
    jwks.set_mode(JwksMode::Status(500));
    let (cognito, _cognito_stop) = broken_cognito().await;
    let (redis, redis_url) = redis_server();
    let mut cfg = gate_config(&jwks.url, &closed_url().await, &cognito);
    cfg.shared.backend = SharedBackend::Redis;
    cfg.shared.url = redis_url;
    let sc = Sidecar::start_with(cfg, false).await;
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let admin_url = format!("http://{}/metrics", admin.local_addr().expect("addr"));
    tokio::spawn(cognito_sidecar::net::serve_admin(
        admin,
        sc.app.clone(),
        std::future::pending(),
    ));
    let app = sc.app.clone();
    let metric = move |name: &str| sample(&app.render_metrics(), name);
    // The keys fail to load, then load.
    until("a JWKS failure", || {
        metric("sidecar_jwks_fetch_failures_total").is_some_and(|n| n > 0.0)
    })
    .await;
    jwks.set_mode(JwksMode::Ok);
    let app = sc.app.clone();
    until("the keys", || app.is_ready()).await;
    until("the fleet store synced", || {
        metric("sidecar_shared_state") == Some(2.0)
    })
    .await;
    // Refused (401), the app down (502), Cognito broken (502 idp_error).
    let c = client();
    let anonymous = c.get(sc.url("/reports")).send().await.expect("answer");
    assert_eq!(anonymous.status(), 401);
    let proxied = c
        .get(sc.url("/reports"))
        .bearer_auth(valid_token("user-1"))
        .send()
        .await
        .expect("answer");
    assert_eq!(proxied.status(), 502);
    let (status, body) = post_json(
        &sc,
        "/api/user/login",
        json!({ "email": "a@example.com", "password": "Correct-Horse-1" }),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("idp_error")),
        "{body}"
    );
    // The shared store goes away.
    drop(redis);
    until("the fleet store down", || {
        metric("sidecar_shared_state") == Some(0.0)
    })
    .await;

    let exposition = c
        .get(&admin_url)
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    sc.stop().await;
    let families = families(&exposition);
    // Every registered family is declared, samples or not (no sign-in happened here).
    assert_eq!(
        families.get("sidecar_session_sign_ins").map(String::as_str),
        Some("counter")
    );
    assert!(families.len() > 30, "{exposition}");

    let problems = check_grafana(&read_json(GRAFANA), &families);
    assert!(problems.is_empty(), "{GRAFANA}:\n{}", problems.join("\n"));
    let page = std::fs::read_to_string(OPERATIONS).expect("operations page");
    let problems = check_metrics_table(&page, &families);
    assert!(
        problems.is_empty(),
        "{OPERATIONS}:\n{}",
        problems.join("\n")
    );

    let lines: Vec<Json> = capture
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        lines.iter().any(|l| l["target"] == "access"),
        "{}",
        capture.text()
    );
    let fields: BTreeSet<String> = lines
        .iter()
        .filter_map(Json::as_object)
        .flat_map(|o| o.keys().cloned())
        .collect();
    let t = template();
    let (problems, published) = check_metric_filters(&t, &lines);
    assert!(
        problems.is_empty(),
        "metric filters:\n{}",
        problems.join("\n")
    );
    for params in [[("SharedCache", "redis")], [("SharedCache", "none")]] {
        let problems = check_cloudwatch(&template_with(&params), &published, &fields);
        assert!(problems.is_empty(), "{params:?}:\n{}", problems.join("\n"));
    }
    // What the issue asks to alarm on is alarmed on; Redis only with the shared cache.
    let alarmed = |params: &[(&str, &str)]| -> BTreeSet<String> {
        resources_of(&template_with(params), "AWS::CloudWatch::Alarm")
            .into_iter()
            .filter_map(|(_, a)| a["properties"]["metricName"].as_str().map(str::to_owned))
            .collect()
    };
    let with = alarmed(&[("SharedCache", "redis")]);
    for m in [
        "Http5xx",
        "IdpErrors",
        "JwksFetchFailures",
        "RedisUnreachable",
    ] {
        assert!(with.contains(m), "no alarm on {m}: {with:?}");
    }
    assert!(!alarmed(&[("SharedCache", "none")]).contains("RedisUnreachable"));
}

// === The checkers fail on what they must refuse ===

fn some_families() -> BTreeMap<String, String> {
    families(
        "# TYPE sidecar_gate_requests counter\n\
         # TYPE sidecar_upstream_response_duration_seconds histogram\n\
         # TYPE sidecar_open_connections gauge\n",
    )
}

#[test]
fn the_metrics_table_is_checked_against_the_families() {
    let f = some_families();
    let rows: Vec<String> = f
        .iter()
        .map(|(name, kind)| {
            let shown = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.clone()
            };
            format!("| `{shown}` | {kind} | — |")
        })
        .collect();
    let page = rows.join("\n");
    assert_eq!(check_metrics_table(&page, &f), Vec::<String>::new());
    // A row missing, a row for nothing, a wrong type, a counter without _total.
    let missing = rows[1..].join("\n");
    assert_eq!(check_metrics_table(&missing, &f).len(), 1, "{missing}");
    let extra = format!("{page}\n| `sidecar_gone_total` | counter | — |");
    assert_eq!(check_metrics_table(&extra, &f).len(), 1);
    let retyped = page.replacen("| counter |", "| gauge |", 1);
    assert!(!check_metrics_table(&retyped, &f).is_empty());
    let first_counter = f
        .iter()
        .find(|(_, k)| k.as_str() == "counter")
        .expect("a counter")
        .0;
    let unsuffixed = page.replace(
        &format!("`{first_counter}_total`"),
        &format!("`{first_counter}`"),
    );
    assert!(!check_metrics_table(&unsuffixed, &f).is_empty());
}

#[test]
fn promql_names_are_checked_against_the_families() {
    let f = some_families();
    let ok = [
        "sum by (outcome) (rate(sidecar_gate_requests_total{job=~\"$job\"}[5m]))",
        "histogram_quantile(0.99, sum by (le) (rate(sidecar_upstream_response_duration_seconds_bucket[5m])))",
        "sum(sidecar_open_connections)",
        "rate(sidecar_upstream_response_duration_seconds_count[1m])",
    ];
    for e in ok {
        assert_eq!(check_promql(e, &f).0, Vec::<String>::new(), "{e}");
    }
    let bad = [
        "rate(sidecar_gate_request_total[5m])",
        "rate(sidecar_gate_requests[5m])",
        "sum(sidecar_gate_requests_total)",
        "rate(sidecar_open_connections[5m])",
        "sidecar_open_connections_total",
        "rate(sidecar_upstream_response_duration_seconds[5m])",
        "sum(rate(sidecar_upstream_response_duration_seconds_bucket[5m]))",
    ];
    for e in bad {
        assert!(!check_promql(e, &f).0.is_empty(), "accepted {e}");
    }
}

#[test]
fn a_dashboard_with_an_unknown_metric_or_a_family_without_a_panel_fails() {
    let f = some_families();
    let says = |dash: &Json, what: &str| {
        let problems = check_grafana(dash, &f);
        assert!(problems.iter().any(|p| p.contains(what)), "{problems:?}");
    };
    // The shipped dashboard shows more than these three: its other names are refused.
    says(&read_json(GRAFANA), "sidecar_jwks_fetches_total");
    let dash = json!({ "panels": [{ "title": "p", "targets": [{ "expr": "sum(sidecar_open_connections)" }] }] });
    says(&dash, "sidecar_gate_requests: no panel");
}

#[test]
fn filter_patterns_match_as_cloudwatch_does() {
    let line = json!({ "target": "access", "status": 502, "msg": "JWKS fetch failed; keeping" });
    let m = |p: &str| {
        parse_pattern(p)
            .expect("readable")
            .iter()
            .all(|t| term_matches(t, &line))
    };
    assert!(m(r#"{ $.target = "access" && $.status >= 500 }"#));
    assert!(!m(r#"{ $.target = "access" && $.status < 500 }"#));
    assert!(m(r#"{ $.msg = "JWKS fetch failed*" }"#));
    assert!(!m(r#"{ $.msg = "JWKS fetch failed" }"#));
    assert!(!m(r#"{ $.stauts >= 500 }"#));
    assert!(!m(r#"{ $.status = "502" }"#));
    assert!(parse_pattern(r#"{ $.a = "x" || $.b = 1 }"#).is_err());
    assert!(parse_pattern("[ip, user]").is_err());
}

#[test]
fn insights_queries_name_their_fields() {
    let q = "SOURCE '<LogGroup>' | filter @logStream like /^x/ and level in [\"warn\"] and status >= 500 | fields @timestamp, msg, code | stats pct(latency_ms, 99) by bin(5m)";
    let want: BTreeSet<String> = ["level", "status", "msg", "code", "latency_ms"]
        .map(String::from)
        .into();
    assert_eq!(insights_fields(q), want);
}
