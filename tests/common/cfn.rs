//! deploy/cloudformation.yaml as JSON, for the tests that read it (tests/deploy.rs,
//! tests/dashboards.rs): parameters, conditions and `If`s resolved as a deployment would.

use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};
use serde_norway::Value as Yaml;

pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

pub fn read_json(rel: &str) -> Json {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: invalid JSON: {e}"))
}

/// The template as JSON, with every key's first letter lowered (CloudFormation's `PortMappings`
/// becomes the ECS API's `portMappings`) so one set of checks reads both task definitions.
/// Short-form intrinsics become `{"!Tag": value}`: `!Ref X` is `{"!Ref": "X"}`; long-form ones
/// keep their keys (`{"Fn::GetAtt": [...]}`).
pub fn template() -> Json {
    let text = read("deploy/cloudformation.yaml");
    let yaml: Yaml = serde_norway::from_str(&text)
        .unwrap_or_else(|e| panic!("deploy/cloudformation.yaml: invalid YAML: {e}"));
    yaml_to_json(&yaml)
}

pub fn yaml_to_json(v: &Yaml) -> Json {
    match v {
        Yaml::Null => Json::Null,
        Yaml::Bool(b) => json!(b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_u64() {
                json!(i)
            } else if let Some(i) = n.as_i64() {
                json!(i)
            } else {
                json!(n.as_f64())
            }
        }
        Yaml::String(s) => json!(s),
        Yaml::Sequence(items) => Json::Array(items.iter().map(yaml_to_json).collect()),
        Yaml::Mapping(m) => Json::Object(
            m.iter()
                .map(|(k, v)| {
                    let k = k.as_str().expect("template keys are strings");
                    (lower_first(k), yaml_to_json(v))
                })
                .collect(),
        ),
        Yaml::Tagged(t) => json!({ t.tag.to_string(): yaml_to_json(&t.value) }),
    }
}

pub fn lower_first(k: &str) -> String {
    // Long-form intrinsics keep their names: `Ref`, `Fn::GetAtt`, ...
    if k == "Ref" || k.starts_with("Fn::") {
        return k.to_owned();
    }
    let mut c = k.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The one `{tag: value}` of a short- or long-form intrinsic (`!If` or `Fn::If`, `!Ref` or
/// `Ref`), with `tag` without its `!` / `Fn::`.
pub fn intrinsic(v: &Json) -> Option<(&str, &Json)> {
    let m = v.as_object().filter(|m| m.len() == 1)?;
    let (k, v) = m.iter().next()?;
    let name = k
        .strip_prefix('!')
        .or_else(|| k.strip_prefix("Fn::"))
        .unwrap_or(k);
    [
        "Ref",
        "If",
        "Not",
        "Equals",
        "And",
        "Or",
        "Condition",
        "Sub",
        "Join",
        "GetAtt",
        "Select",
        "Split",
    ]
    .contains(&name)
    .then_some((name, v))
}

/// Parameter values (name as written, value); those not given take their defaults.
pub type Params<'a> = [(&'a str, &'a str)];

pub fn param_value(t: &Json, params: &Params, name: &str) -> String {
    if let Some((_, v)) = params.iter().find(|(k, _)| *k == name) {
        return (*v).to_owned();
    }
    match &t["parameters"][lower_first(name)]["default"] {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        other => panic!("parameter {name}: no value given and default {other}"),
    }
}

/// Whether the template's condition `name` holds with these parameters (`Not`, `Equals`,
/// `And`, `Or`, `Condition` over literals and `Ref`s to parameters).
pub fn condition_holds(t: &Json, params: &Params, name: &str) -> bool {
    let def = &t["conditions"][lower_first(name)];
    assert!(!def.is_null(), "condition {name} is not defined");
    eval_condition(t, params, def)
}

pub fn eval_condition(t: &Json, params: &Params, v: &Json) -> bool {
    let args = |a: &Json| a.as_array().cloned().unwrap_or_default();
    match intrinsic(v) {
        Some(("Not", a)) => !eval_condition(t, params, &args(a)[0]),
        Some(("And", a)) => args(a).iter().all(|c| eval_condition(t, params, c)),
        Some(("Or", a)) => args(a).iter().any(|c| eval_condition(t, params, c)),
        Some(("Condition", Json::String(c))) => condition_holds(t, params, c),
        Some(("Equals", a)) => {
            let a = args(a);
            let scalar = |x: &Json| match (x, intrinsic(x)) {
                (Json::String(s), _) => s.clone(),
                (_, Some(("Ref", Json::String(p)))) => param_value(t, params, p),
                _ => panic!("unsupported in a condition: {x}"),
            };
            a.len() == 2 && scalar(&a[0]) == scalar(&a[1])
        }
        _ => panic!("unsupported condition {v}"),
    }
}

/// `v` with every `If` replaced by the branch its condition selects and every
/// `Ref AWS::NoValue` removed (from its list or its key); `None` if `v` itself is NoValue.
pub fn resolve_ifs(t: &Json, params: &Params, v: &Json) -> Option<Json> {
    match (intrinsic(v), v) {
        (Some(("Ref", r)), _) if r == "AWS::NoValue" => None,
        (Some(("If", Json::Array(a))), _) => {
            assert_eq!(a.len(), 3, "If takes three arguments: {v}");
            let cond = a[0].as_str().expect("If's condition name");
            let branch = if condition_holds(t, params, cond) {
                &a[1]
            } else {
                &a[2]
            };
            resolve_ifs(t, params, branch)
        }
        (_, Json::Array(items)) => Some(Json::Array(
            items
                .iter()
                .filter_map(|i| resolve_ifs(t, params, i))
                .collect(),
        )),
        (_, Json::Object(m)) => Some(Json::Object(
            m.iter()
                .filter_map(|(k, i)| Some((k.clone(), resolve_ifs(t, params, i)?)))
                .collect(),
        )),
        _ => Some(v.clone()),
    }
}

/// The template as deployed with these parameters: resources and outputs whose condition
/// does not hold are gone, and every `If` is resolved.
pub fn template_with(params: &Params) -> Json {
    let mut t = template();
    for section in ["resources", "outputs"] {
        let kept: serde_json::Map<String, Json> = t[section]
            .as_object()
            .expect(section)
            .iter()
            .filter(|(_, r)| {
                r["condition"]
                    .as_str()
                    .is_none_or(|c| condition_holds(&t, params, c))
            })
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        t[section] = Json::Object(kept);
    }
    resolve_ifs(&t, params, &t).expect("the template")
}
