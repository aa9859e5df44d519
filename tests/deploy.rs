//! The deployment files agree with the code: `deploy/iam/task-role-policy.json` and the
//! CloudFormation task role grant exactly the calls `idp::iam_actions` says are signed with AWS
//! credentials; the ECS task definition (standalone and in the template) has the shape the
//! sidecar needs; its environment is a valid configuration on top of `proxy.toml`, with and
//! without the template's optional shared cache, which only the tasks reach; and the
//! Dockerfile builds with `deploy/build-release.sh` and puts the binary where the health checks
//! look for it.

#![allow(clippy::result_large_err)] // figment::Jail's closure signature

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cognito_sidecar::config::reference;
use cognito_sidecar::config::{AuthFlow, LogFormat, SharedBackend};
use cognito_sidecar::idp::iam_actions;
use cognito_sidecar::idp::PasswordPolicy;
use cognito_sidecar::Config;
use common::cfn::{
    condition_holds, eval_condition, intrinsic, lower_first, read, read_json, repo, template,
    template_with, Params,
};
use figment::providers::{Format, Toml};
use serde_json::{json, Value as Json};

const SIDECAR: &str = "cognito-sidecar";
const APP: &str = "legacy-app";
/// Where the Dockerfile puts the binary, and what the health checks run.
const BINARY: &str = "/cognito-sidecar";
const SIDECAR_PORT: u64 = 8080;
const SEED_ENV: [&str; 3] = [
    "AWS_REGION",
    "COGNITO_USER_POOL_ID",
    "COGNITO_APP_CLIENT_ID",
];
const SECRET_ENV: &str = "COGNITO_APP_CLIENT_SECRET";
/// Fargate's largest stopTimeout.
const MAX_STOP_TIMEOUT: u64 = 120;

/// The values of the `SharedCache` parameter.
const SHARED_CACHE: [&str; 3] = ["none", "valkey", "redis"];

/// `Action` (or any IAM field) as a list: a string or an array of strings.
fn strings(v: &Json) -> Vec<String> {
    match v {
        Json::String(s) => vec![s.clone()],
        Json::Array(items) => items
            .iter()
            .map(|i| i.as_str().expect("a string").to_owned())
            .collect(),
        other => panic!("expected a string or a list of strings, got {other}"),
    }
}

/// Every string anywhere in `v`.
fn all_strings(v: &Json, out: &mut Vec<String>) {
    match v {
        Json::String(s) => out.push(s.clone()),
        Json::Array(items) => items.iter().for_each(|i| all_strings(i, out)),
        Json::Object(m) => m.values().for_each(|i| all_strings(i, out)),
        _ => {}
    }
}

fn expected_actions() -> BTreeSet<String> {
    iam_actions(AuthFlow::AdminUserPassword)
        .iter()
        .map(|a| format!("cognito-idp:{a}"))
        .collect()
}

/// The actions of an IAM policy document's statements, checking on the way that every
/// statement allows, names its actions and resources positively, and holds no `*`.
fn policy_actions(doc: &Json, what: &str) -> (BTreeSet<String>, Vec<Json>) {
    let statements = match &doc["Statement"] {
        Json::Array(s) => s.clone(),
        s @ Json::Object(_) => vec![s.clone()],
        other => panic!("{what}: Statement is {other}"),
    };
    assert!(!statements.is_empty(), "{what}: no statement");
    let mut actions = BTreeSet::new();
    let mut resources = Vec::new();
    for s in &statements {
        assert_eq!(s["Effect"], "Allow", "{what}: {s}");
        for negative in ["NotAction", "NotResource", "NotPrincipal"] {
            assert!(s.get(negative).is_none(), "{what}: {negative} in {s}");
        }
        let mut text = Vec::new();
        all_strings(s, &mut text);
        assert!(
            text.iter().all(|t| !t.contains('*')),
            "{what}: a wildcard in {s}"
        );
        actions.extend(strings(&s["Action"]));
        resources.push(s["Resource"].clone());
    }
    (actions, resources)
}

#[test]
fn iam_policy_grants_exactly_the_calls_signed_with_aws_credentials() {
    let expected = expected_actions();
    assert!(!expected.is_empty());
    // The book's claim (docs/src/iam.md): the user_password flow needs no Cognito permission in the task role.
    assert!(iam_actions(AuthFlow::UserPassword).is_empty());

    let doc = read_json("deploy/iam/task-role-policy.json");
    assert_eq!(doc["Version"], "2012-10-17");
    let (actions, resources) = policy_actions(&doc, "task-role-policy.json");
    assert_eq!(actions, expected);
    for r in resources {
        for r in strings(&r) {
            assert_eq!(
                r, "arn:aws:cognito-idp:<REGION>:<ACCOUNT>:userpool/<POOL_ID>",
                "the policy is for the user pool only"
            );
        }
    }
}

#[test]
fn cloudformation_task_role_grants_the_same_actions_on_the_pool() {
    let t = template();
    let r = &t["resources"];
    let role = &r["taskRole"]["properties"];
    let policies = role["policies"].as_array().expect("TaskRole.Policies");
    assert_eq!(policies.len(), 1, "one inline policy");
    let mut doc = policies[0]["policyDocument"].clone();
    // Back to IAM's own key spelling for the shared checks.
    for s in doc["statement"].as_array_mut().expect("Statement list") {
        let m = s.as_object_mut().expect("statement");
        *s = Json::Object(
            m.iter()
                .map(|(k, v)| (format!("{}{}", k[..1].to_uppercase(), &k[1..]), v.clone()))
                .collect(),
        );
    }
    let doc = json!({ "Statement": doc["statement"] });
    let (actions, resources) = policy_actions(&doc, "TaskRole");
    assert_eq!(actions, expected_actions());
    for res in resources {
        let pool_arn = [
            json!({"!GetAtt": "UserPool.Arn"}),
            json!({"Fn::GetAtt": ["UserPool", "Arn"]}),
        ];
        assert!(
            pool_arn.contains(&res),
            "Resource must be the pool's Arn, got {res}"
        );
    }
    assert!(
        role.get("managedPolicyArns").is_none(),
        "the task role has only its policy"
    );
    assert_eq!(r["userPool"]["type"], "AWS::Cognito::UserPool");
    assert_eq!(
        r["taskDefinition"]["properties"]["taskRoleArn"],
        json!({"!GetAtt": "TaskRole.Arn"})
    );
}

/// Name → value of a container's `environment` (of a template: after `template_with`).
fn env_of(container: &Json) -> Vec<(String, Json)> {
    container["environment"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|kv| {
                    assert!(
                        intrinsic(kv).is_none(),
                        "{kv}: resolve the template's conditions first (template_with)"
                    );
                    let name = kv["name"].as_str().expect("environment name").to_owned();
                    (name, kv["value"].clone())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn container<'a>(task: &'a Json, name: &str, what: &str) -> &'a Json {
    task["containerDefinitions"]
        .as_array()
        .expect("containerDefinitions")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{what}: no container {name}"))
}

/// The checks both task definitions must pass. `secret`: whether the client secret is
/// injected (the standalone file shows how; the template's app client has no secret).
fn check_task_definition(task: &Json, what: &str, secret: bool) {
    assert_eq!(task["networkMode"], "awsvpc", "{what}");
    assert!(
        strings(&task["requiresCompatibilities"]).contains(&"FARGATE".to_owned()),
        "{what}"
    );
    assert!(!task["taskRoleArn"].is_null(), "{what}: taskRoleArn");
    assert!(
        !task["executionRoleArn"].is_null(),
        "{what}: executionRoleArn"
    );
    let containers = task["containerDefinitions"].as_array().expect("containers");
    let names: BTreeSet<_> = containers
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, BTreeSet::from([SIDECAR, APP]), "{what}");

    // Only the sidecar is reachable from outside the task, on 8080.
    for c in containers {
        let ports: Vec<u64> = c["portMappings"]
            .as_array()
            .map(|p| {
                p.iter()
                    .filter_map(|m| m["containerPort"].as_u64())
                    .collect()
            })
            .unwrap_or_default();
        let want: Vec<u64> = if c["name"] == SIDECAR {
            vec![SIDECAR_PORT]
        } else {
            vec![]
        };
        assert_eq!(ports, want, "{what}: portMappings of {}", c["name"]);
        assert_eq!(c["essential"], true, "{what}: {} essential", c["name"]);
        let log = &c["logConfiguration"];
        assert_eq!(log["logDriver"], "awslogs", "{what}: {}", c["name"]);
        for opt in ["awslogs-group", "awslogs-region", "awslogs-stream-prefix"] {
            assert!(
                !log["options"][opt].is_null(),
                "{what}: {} {opt}",
                c["name"]
            );
        }
        // The secrets (the client secret, the shared cache's password) never sit in plain
        // environment, in any container. (The password forms' policy text is no secret.)
        for (name, _) in env_of(c) {
            assert!(
                name == "SIDECAR_SESSION__PASSWORD_POLICY"
                    || (!name.contains("SECRET") && !name.contains("PASSWORD")),
                "{what}: {name} in {}'s environment",
                c["name"]
            );
        }
    }

    let sidecar = container(task, SIDECAR, what);
    let env = env_of(sidecar);
    let env_names: BTreeSet<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
    for seed in SEED_ENV {
        assert!(env_names.contains(seed), "{what}: {seed} missing");
    }
    let value = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(
        value("SIDECAR_UPSTREAM__URL"),
        Some(json!("http://127.0.0.1:3000")),
        "{what}"
    );
    if let Some(listen) = value("SIDECAR_SERVER__LISTEN") {
        assert_eq!(listen, json!(format!("0.0.0.0:{SIDECAR_PORT}")), "{what}");
    }

    let secrets = sidecar["secrets"].as_array().cloned().unwrap_or_default();
    if secret {
        let s = secrets
            .iter()
            .find(|s| s["name"] == SECRET_ENV)
            .unwrap_or_else(|| panic!("{what}: {SECRET_ENV} not under secrets"));
        let from = s["valueFrom"].as_str().expect("valueFrom");
        assert!(
            from.starts_with("arn:aws:secretsmanager:"),
            "{what}: {from}"
        );
    } else {
        assert!(secrets.is_empty(), "{what}: the app client has no secret");
    }

    let depends = sidecar["dependsOn"].as_array().expect("sidecar dependsOn");
    assert!(
        depends.iter().any(|d| d["containerName"] == APP
            && ["START", "HEALTHY"].contains(&d["condition"].as_str().unwrap_or(""))),
        "{what}: the sidecar must wait for the app: {depends:?}"
    );

    assert_eq!(
        sidecar["healthCheck"]["command"],
        json!(["CMD", BINARY, "healthcheck"]),
        "{what}"
    );

    let grace = Config::default().server.shutdown_grace.as_secs();
    assert_eq!(grace, 25);
    for c in containers {
        let stop = c["stopTimeout"].as_u64().unwrap_or(0);
        assert!(
            stop > grace && stop <= MAX_STOP_TIMEOUT,
            "{what}: {} stopTimeout {stop} must exceed shutdown_grace {grace}s",
            c["name"]
        );
    }
}

#[test]
fn task_definition_has_the_sidecar_shape() {
    let task = read_json("deploy/ecs/task-definition.json");
    check_task_definition(&task, "task-definition.json", true);
    let app = container(&task, APP, "task-definition.json");
    assert!(app["image"]
        .as_str()
        .is_some_and(|i| i.ends_with("/legacy-app:latest")));
}

#[test]
fn cloudformation_template_has_the_sidecar_shape() {
    for cache in SHARED_CACHE {
        let t = template_with(&[("SharedCache", cache)]);
        let task = &t["resources"]["taskDefinition"];
        assert_eq!(task["type"], "AWS::ECS::TaskDefinition");
        let what = format!("cloudformation.yaml (SharedCache={cache})");
        check_task_definition(&task["properties"], &what, false);
    }

    let t = template_with(&[]);
    let r = &t["resources"];
    let kind = |name: &str| r[name]["type"].as_str().unwrap_or("").to_owned();
    let p = |name: &str| &r[name]["properties"];

    assert_eq!(kind("userPoolClient"), "AWS::Cognito::UserPoolClient");
    let client = p("userPoolClient");
    assert_eq!(client["generateSecret"], false);
    let flows: BTreeSet<String> = strings(&client["explicitAuthFlows"]).into_iter().collect();
    for f in [
        "ALLOW_ADMIN_USER_PASSWORD_AUTH",
        "ALLOW_USER_PASSWORD_AUTH",
        "ALLOW_REFRESH_TOKEN_AUTH",
    ] {
        assert!(flows.contains(f), "app client lacks {f}");
    }

    assert_eq!(
        kind("targetGroup"),
        "AWS::ElasticLoadBalancingV2::TargetGroup"
    );
    let tg = p("targetGroup");
    assert_eq!(tg["targetType"], "ip");
    assert_eq!(tg["port"], SIDECAR_PORT);
    assert_eq!(tg["healthCheckPath"], Config::default().health.ready_path);
    assert_eq!(tg["healthCheckPath"], "/readyz");

    assert_eq!(kind("listener"), "AWS::ElasticLoadBalancingV2::Listener");
    assert_eq!(p("listener")["port"], 80);

    assert_eq!(kind("service"), "AWS::ECS::Service");
    let svc = p("service");
    assert_eq!(svc["launchType"], "FARGATE");
    assert_eq!(svc["deploymentConfiguration"]["minimumHealthyPercent"], 100);
    assert_eq!(svc["deploymentConfiguration"]["maximumPercent"], 200);
    assert_eq!(
        svc["loadBalancers"],
        json!([{
            "containerName": SIDECAR,
            "containerPort": SIDECAR_PORT,
            "targetGroupArn": {"!Ref": "TargetGroup"},
        }])
    );

    for (name, ty) in [
        ("executionRole", "AWS::IAM::Role"),
        ("taskRole", "AWS::IAM::Role"),
        ("logGroup", "AWS::Logs::LogGroup"),
        ("cluster", "AWS::ECS::Cluster"),
        ("loadBalancer", "AWS::ElasticLoadBalancingV2::LoadBalancer"),
        ("loadBalancerSecurityGroup", "AWS::EC2::SecurityGroup"),
        ("taskSecurityGroup", "AWS::EC2::SecurityGroup"),
    ] {
        assert_eq!(kind(name), ty, "{name}");
    }
    // Only the load balancer reaches the tasks, only on the sidecar's port.
    assert_eq!(
        p("taskSecurityGroup")["securityGroupIngress"],
        json!([{
            "description": "The sidecar, from the load balancer",
            "ipProtocol": "tcp",
            "fromPort": SIDECAR_PORT,
            "toPort": SIDECAR_PORT,
            "sourceSecurityGroupId": {"!Ref": "LoadBalancerSecurityGroup"},
        }])
    );
    for param in [
        "vpcId",
        "loadBalancerSubnetIds",
        "taskSubnetIds",
        "sidecarImage",
        "appImage",
    ] {
        assert!(t["parameters"].get(param).is_some(), "parameter {param}");
    }
}

/// The template's resource `id` (a logical id as written: `Cache`).
fn resource<'a>(t: &'a Json, id: &str) -> &'a Json {
    let r = &t["resources"][lower_first(id)];
    assert!(!r.is_null(), "no resource {id}");
    r
}

/// The logical id a `!Ref X` / `{"Ref": "X"}` names.
fn ref_of(v: &Json) -> Option<&str> {
    match intrinsic(v) {
        Some(("Ref", Json::String(id))) => Some(id),
        _ => None,
    }
}

/// The logical id (as written) of the template's only resource of type `ty`.
fn only_resource_of_type(t: &Json, ty: &str) -> String {
    let ids: Vec<String> = t["resources"]
        .as_object()
        .expect("resources")
        .iter()
        .filter(|(_, r)| r["type"] == ty)
        .map(|(id, _)| {
            let mut c = id.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one {ty}: {ids:?}");
    ids[0].clone()
}

/// Security group rules without their descriptions.
fn rules_of(v: &Json) -> Vec<Json> {
    v.as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut r| {
            if let Some(m) = r.as_object_mut() {
                m.remove("description");
            }
            r
        })
        .collect()
}

const CACHE_PORT: u64 = 6379;

#[test]
fn cloudformation_shared_cache_is_optional_and_reachable_only_from_the_tasks() {
    let t = template();

    // The parameter: off by default, an engine name when on.
    let param = &t["parameters"]["sharedCache"];
    assert_eq!(param["type"], "String");
    assert_eq!(param["default"], "none");
    assert_eq!(param["allowedValues"], json!(SHARED_CACHE));

    let cache_id = only_resource_of_type(&t, "AWS::ElastiCache::ServerlessCache");
    let cache = resource(&t, &cache_id);
    let cond = cache["condition"]
        .as_str()
        .expect("the cache has a condition")
        .to_owned();
    assert!(!condition_holds(&t, &[], &cond), "no cache by default");
    for value in SHARED_CACHE {
        assert_eq!(
            condition_holds(&t, &[("SharedCache", value)], &cond),
            value != "none",
            "SharedCache={value}"
        );
    }
    let props = &cache["properties"];
    assert_eq!(ref_of(&props["engine"]), Some("SharedCache"), "Engine");
    assert!(
        props.get("userGroupId").is_none(),
        "no user group: the sidecar gets no cache credentials"
    );

    // In the tasks' subnets, behind its own security group.
    let service =
        &resource(&t, "Service")["properties"]["networkConfiguration"]["awsvpcConfiguration"];
    assert_eq!(props["subnetIds"], service["subnets"]);
    assert_eq!(ref_of(&props["subnetIds"]), Some("TaskSubnetIds"));
    let task_sg = service["securityGroups"]
        .as_array()
        .and_then(|g| g.first())
        .and_then(ref_of)
        .expect("the tasks' security group");
    assert_eq!(task_sg, "TaskSecurityGroup");
    let groups = props["securityGroupIds"]
        .as_array()
        .expect("SecurityGroupIds");
    assert_eq!(groups.len(), 1, "the cache's own group only");
    let cache_sg = ref_of(&groups[0]).expect("a Ref to the cache's group");
    assert_ne!(cache_sg, task_sg);
    let sg = resource(&t, cache_sg);
    assert_eq!(sg["type"], "AWS::EC2::SecurityGroup");
    assert_eq!(
        sg["condition"],
        json!(cond),
        "{cache_sg} exists with the cache"
    );
    assert_eq!(ref_of(&sg["properties"]["vpcId"]), Some("VpcId"));

    // Exactly TCP 6379 from the tasks: inline, and no separate ingress resource.
    assert_eq!(
        rules_of(&sg["properties"]["securityGroupIngress"]),
        [json!({
            "ipProtocol": "tcp",
            "fromPort": CACHE_PORT,
            "toPort": CACHE_PORT,
            "sourceSecurityGroupId": {"!Ref": task_sg},
        })]
    );
    let all = t["resources"].as_object().expect("resources");
    for (id, r) in all {
        if r["type"] == "AWS::EC2::SecurityGroupIngress" {
            assert_ne!(
                ref_of(&r["properties"]["groupId"]),
                Some(cache_sg),
                "{id}: the cache's ingress is its inline rule only"
            );
        }
    }
    // If the tasks' egress is ever restricted, it must let them reach the cache.
    let task_egress: Vec<Json> = all
        .values()
        .filter(|r| {
            r["type"] == "AWS::EC2::SecurityGroupEgress"
                && ref_of(&r["properties"]["groupId"]) == Some(task_sg)
        })
        .map(|r| r["properties"].clone())
        .chain(rules_of(
            &resource(&t, task_sg)["properties"]["securityGroupEgress"],
        ))
        .collect();
    if !task_egress.is_empty() {
        assert!(
            task_egress.iter().any(|e| {
                ref_of(&e["destinationSecurityGroupId"]) == Some(cache_sg)
                    && e["fromPort"] == CACHE_PORT
                    && e["toPort"] == CACHE_PORT
            }),
            "the tasks' egress is restricted but does not reach the cache: {task_egress:?}"
        );
    }

    // The sidecar's environment: backend and URL exactly when the cache exists.
    let task = &resource(&t, "TaskDefinition")["properties"];
    let sidecar = container(task, SIDECAR, "cloudformation.yaml");
    let mut conditional = BTreeMap::new();
    for entry in sidecar["environment"].as_array().expect("environment") {
        let name = match intrinsic(entry) {
            Some(("If", Json::Array(a))) => {
                assert_eq!(a.len(), 3, "{entry}");
                if a[0] == json!("ManagedLoginOn") {
                    // Federated sign-in's entries (cloudformation_managed_login_*).
                    let name = a[1]["name"].as_str().unwrap_or("");
                    assert!(name.starts_with("SIDECAR_SESSION__"), "{entry}");
                    assert_eq!(ref_of(&a[2]), Some("AWS::NoValue"), "{entry}");
                    continue;
                }
                if a[0] == json!("ExtraTrustedPoolsOn") {
                    // The other conditional entry: the extra trusted pools, when given.
                    assert_eq!(a[1]["name"], "SIDECAR_VERIFY__POOLS", "{entry}");
                    assert_eq!(ref_of(&a[1]["value"]), Some("ExtraTrustedPools"), "{entry}");
                    assert_eq!(ref_of(&a[2]), Some("AWS::NoValue"), "{entry}");
                    continue;
                }
                assert_eq!(a[0], json!(cond), "{entry}: the cache's condition");
                assert_eq!(
                    ref_of(&a[2]),
                    Some("AWS::NoValue"),
                    "{entry}: nothing without the cache"
                );
                let name = a[1]["name"].as_str().expect("name").to_owned();
                conditional.insert(name.clone(), a[1]["value"].clone());
                name
            }
            _ => entry["name"].as_str().expect("name").to_owned(),
        };
        if name.starts_with("SIDECAR_SHARED__") {
            assert!(
                conditional.contains_key(&name),
                "{name} is set only with the cache"
            );
        }
    }
    assert_eq!(
        conditional.keys().map(String::as_str).collect::<Vec<_>>(),
        ["SIDECAR_SHARED__BACKEND", "SIDECAR_SHARED__URL"]
    );
    assert_eq!(conditional["SIDECAR_SHARED__BACKEND"], "redis");
    let url = match intrinsic(&conditional["SIDECAR_SHARED__URL"]) {
        Some(("Sub", Json::String(s))) => s.clone(),
        other => panic!("SIDECAR_SHARED__URL: expected a Sub, got {other:?}"),
    };
    assert_eq!(
        url,
        format!("rediss://${{{cache_id}.Endpoint.Address}}:${{{cache_id}.Endpoint.Port}}"),
        "TLS (ElastiCache Serverless accepts nothing else), to the cache's endpoint"
    );

    // Resolved: present with the cache, gone without.
    for value in SHARED_CACHE {
        let t = template_with(&[("SharedCache", value)]);
        let on = value != "none";
        assert_eq!(t["resources"].get(lower_first(&cache_id)).is_some(), on);
        assert_eq!(t["resources"].get(lower_first(cache_sg)).is_some(), on);
        let task = &t["resources"]["taskDefinition"]["properties"];
        let env = env_of(container(task, SIDECAR, value));
        let shared: Vec<&str> = env
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| n.starts_with("SIDECAR_SHARED__"))
            .collect();
        let want: &[&str] = if on {
            &["SIDECAR_SHARED__BACKEND", "SIDECAR_SHARED__URL"]
        } else {
            &[]
        };
        assert_eq!(shared, want, "SharedCache={value}");
    }
}

/// Sample values of the template's parameters, pseudo-parameters, `Ref`s and attributes, for
/// loading its environment.
const SAMPLES: [(&str, &str); 6] = [
    ("AWS::Region", "eu-west-1"),
    ("UserPool", "eu-west-1_Example"),
    ("UserPoolClient", "exampleclientid0123456789"),
    ("TrustedProxyCidrs", "10.0.0.0/16"),
    (
        "Cache.Endpoint.Address",
        "sidecar-0123abcd-x1y2z3.serverless.euw1.cache.amazonaws.com",
    ),
    ("Cache.Endpoint.Port", "6379"),
];

fn sample(name: &str) -> &'static str {
    SAMPLES
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no sample value for {name}"))
}

/// An environment value of the template with its intrinsics evaluated over `SAMPLES`
/// (`Ref`, `GetAtt`, `Sub` without a variable map, `Join`); a list parameter is one sample.
fn render(v: &Json) -> Json {
    render_with(&template(), &[], v)
}

/// A value of the template (its `If`s resolved) with its intrinsics evaluated: `Ref` to a
/// parameter given in `params` or with a default (a `CommaDelimitedList` as a list), to an
/// identity provider (its provider name, as CloudFormation answers), else to `SAMPLES`;
/// `GetAtt`, `Sub` without a variable map, `Join`, `Split`, `Select`.
fn render_with(t: &Json, params: &Params, v: &Json) -> Json {
    let value = |name: &str| -> Json {
        let param = &t["parameters"][lower_first(name)];
        let given = params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let resource = &t["resources"][lower_first(name)];
        let text = match (given, &param["default"]) {
            (Some(v), _) => v.to_owned(),
            (None, Json::String(d)) if !param.is_null() => d.clone(),
            _ if resource["type"] == "AWS::Cognito::UserPoolIdentityProvider" => {
                return render_with(t, params, &resource["properties"]["providerName"]);
            }
            _ => sample(name).to_owned(),
        };
        if param["type"] == "CommaDelimitedList" {
            json!(text.split(',').collect::<Vec<_>>())
        } else {
            json!(text)
        }
    };
    let string = |v: &Json| match render_with(t, params, v) {
        Json::String(s) => s,
        other => panic!("expected a string, got {other}"),
    };
    let list = |v: &Json| match render_with(t, params, v) {
        Json::Array(items) => items,
        other => panic!("expected a list, got {other}"),
    };
    match (intrinsic(v), v) {
        (_, Json::String(_) | Json::Bool(_) | Json::Number(_)) => v.clone(),
        (Some(("Ref", Json::String(r))), _) => value(r),
        (Some(("GetAtt", Json::String(a))), _) => json!(sample(a)),
        (Some(("GetAtt", Json::Array(a))), _) => {
            let a: Vec<&str> = a.iter().filter_map(Json::as_str).collect();
            json!(sample(&a.join(".")))
        }
        (Some(("Sub", Json::String(s))), _) => {
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                let end = rest[start..].find('}').expect("a closed ${") + start;
                out.push_str(&rest[..start]);
                out.push_str(&string(&json!({"!Ref": &rest[start + 2..end]})));
                rest = &rest[end + 1..];
            }
            out.push_str(rest);
            json!(out)
        }
        (Some(("Join", Json::Array(a))), _) => {
            let sep = a[0].as_str().expect("Join's delimiter");
            let items: Vec<String> = list(&a[1]).iter().map(string).collect();
            json!(items.join(sep))
        }
        (Some(("Split", Json::Array(a))), _) => {
            let sep = a[0].as_str().expect("Split's delimiter");
            json!(string(&a[1]).split(sep).collect::<Vec<_>>())
        }
        (Some(("Select", Json::Array(a))), _) => {
            let i = a[0].as_u64().expect("Select's index") as usize;
            list(&a[1])[i].clone()
        }
        (_, Json::Array(items)) => {
            Json::Array(items.iter().map(|i| render_with(t, params, i)).collect())
        }
        _ => panic!("cannot evaluate {v}"),
    }
}

/// The sidecar's environment in the template deployed with `SharedCache=cache`.
fn template_environment(cache: &str) -> Vec<(String, String)> {
    let t = template_with(&[("SharedCache", cache)]);
    let task = &t["resources"]["taskDefinition"]["properties"];
    env_of(container(task, SIDECAR, "cloudformation.yaml"))
        .into_iter()
        .map(|(k, v)| match render(&v) {
            Json::String(s) => (k, s),
            other => panic!("{k}: {other} is not a string"),
        })
        .collect()
}

#[test]
fn template_environment_is_a_valid_configuration_over_proxy_toml_with_and_without_the_cache() {
    let toml = repo("proxy.toml");
    for cache in SHARED_CACHE {
        let env = template_environment(cache);
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            for (k, v) in &env {
                jail.set_env(k, v);
            }
            let config = Config::load(&toml).map_err(|e| format!("SharedCache={cache}: {e}"))?;
            let derived = config
                .validate()
                .map_err(|e| format!("SharedCache={cache}: {e}"))?;
            assert_eq!(derived.region, "eu-west-1");
            assert_eq!(config.cognito.client_secret, None);
            assert_eq!(config.cognito.auth_flow, AuthFlow::AdminUserPassword);
            assert_eq!(config.upstream.url, "http://127.0.0.1:3000");
            assert_eq!(u64::from(config.server.listen.port()), SIDECAR_PORT);
            assert_eq!(config.log.format, LogFormat::Json);
            let proxies: Vec<String> = config
                .server
                .trusted_proxies
                .iter()
                .map(|n| n.to_string())
                .collect();
            assert_eq!(proxies, ["10.0.0.0/16"]);
            let shared = &config.shared;
            if cache == "none" {
                assert_eq!(shared.backend, SharedBackend::Memory, "{cache}");
            } else {
                assert_eq!(shared.backend, SharedBackend::Redis, "{cache}");
                assert_eq!(
                    shared.url,
                    format!("rediss://{}:6379", sample("Cache.Endpoint.Address"))
                );
                // No user group on the cache: no AUTH.
                assert_eq!(shared.username, None);
                assert_eq!(shared.password, None);
            }
            Ok(())
        });
    }
}

/// One deployment of the template with federated sign-in on, and what the sidecar and the
/// app client must then agree on.
struct ManagedLogin {
    params: &'static [(&'static str, &'static str)],
    /// `session.managed_login.domain`.
    domain: &'static str,
    /// `session.managed_login.sign_out_url`, and the app client's one sign-out URL.
    sign_out_url: &'static str,
    /// The sign-in page's buttons, in order.
    buttons: &'static [&'static str],
    other_ways: bool,
    oidc: bool,
    custom_domain: bool,
}

const CALLBACK: &str = "https://app.example.com/_auth/callback";

const MANAGED_LOGIN: [ManagedLogin; 4] = [
    // Staff sign in with Okta over OIDC, from the stack alone; and Google, added to the pool.
    ManagedLogin {
        params: &[
            ("ManagedLoginDomain", "legacy-app-login"),
            ("ManagedLoginCallbackUrl", CALLBACK),
            ("ManagedLoginIdentityProviders", "Google"),
            ("OidcProviderName", "Okta"),
            ("OidcIssuer", "https://example.okta.com"),
            ("OidcClientId", "0oa1example"),
            ("OidcClientSecret", "provider-secret"),
            ("SharedCache", "valkey"),
        ],
        domain: "https://legacy-app-login.auth.eu-west-1.amazoncognito.com",
        sign_out_url: "https://app.example.com/_auth/sign-in",
        buttons: &["Okta", "Google"],
        other_ways: false,
        oidc: true,
        custom_domain: false,
    },
    // A custom domain, providers of the pool only, a sign-out URL of its own.
    ManagedLogin {
        params: &[
            ("ManagedLoginDomain", "login.example.com"),
            (
                "ManagedLoginCertificateArn",
                "arn:aws:acm:us-east-1:123456789012:certificate/0123abcd-0123-abcd-0123-0123456789ab",
            ),
            ("ManagedLoginCallbackUrl", CALLBACK),
            ("ManagedLoginSignOutUrl", "https://app.example.com/goodbye"),
            ("ManagedLoginIdentityProviders", "Entra,SignInWithApple"),
            ("DesiredCount", "1"),
        ],
        domain: "https://login.example.com",
        sign_out_url: "https://app.example.com/goodbye",
        buttons: &["Entra", "SignInWithApple"],
        other_ways: false,
        oidc: false,
        custom_domain: true,
    },
    // The OIDC provider alone.
    ManagedLogin {
        params: &[
            ("ManagedLoginDomain", "legacy-app-login"),
            ("ManagedLoginCallbackUrl", CALLBACK),
            ("OidcProviderName", "Okta"),
            ("OidcIssuer", "https://example.okta.com"),
            ("OidcClientId", "0oa1example"),
            ("OidcClientSecret", "provider-secret"),
            ("SharedCache", "redis"),
        ],
        domain: "https://legacy-app-login.auth.eu-west-1.amazoncognito.com",
        sign_out_url: "https://app.example.com/_auth/sign-in",
        buttons: &["Okta"],
        other_ways: false,
        oidc: true,
        custom_domain: false,
    },
    // No button: the managed login page itself ("Use another way to sign in").
    ManagedLogin {
        params: &[
            ("ManagedLoginDomain", "legacy-app-login"),
            ("ManagedLoginCallbackUrl", CALLBACK),
            ("ManagedLoginOtherWays", "true"),
            ("DesiredCount", "1"),
        ],
        domain: "https://legacy-app-login.auth.eu-west-1.amazoncognito.com",
        sign_out_url: "https://app.example.com/_auth/sign-in",
        buttons: &[],
        other_ways: true,
        oidc: false,
        custom_domain: false,
    },
];

/// Whether the template's rules (`Rules`: an assertion must hold when its rule's condition
/// does) accept these parameters; the first refusal's description otherwise.
fn rules_accept(t: &Json, params: &Params) -> Result<(), String> {
    for (name, rule) in t["rules"].as_object().expect("Rules") {
        let applies = rule
            .get("ruleCondition")
            .is_none_or(|c| eval_condition(t, params, c));
        if !applies {
            continue;
        }
        for a in rule["assertions"].as_array().expect("Assertions") {
            if !eval_condition(t, params, &a["assert"]) {
                return Err(format!("{name}: {}", a["assertDescription"]));
            }
        }
    }
    Ok(())
}

/// Every `Ref` and `GetAtt` target named anywhere in `v`.
fn references(v: &Json, out: &mut BTreeSet<String>) {
    match (intrinsic(v), v) {
        (Some(("Ref", Json::String(r))), _) => {
            out.insert(r.clone());
        }
        (Some(("GetAtt", Json::String(a))), _) => {
            out.insert(a.split('.').next().unwrap_or("").to_owned());
        }
        (Some(("Sub", Json::String(s))), _) => {
            for part in s.split("${").skip(1) {
                let name = part.split('}').next().unwrap_or("");
                out.insert(name.split('.').next().unwrap_or("").to_owned());
            }
        }
        (_, Json::Array(items)) => items.iter().for_each(|i| references(i, out)),
        (_, Json::Object(m)) => m.values().for_each(|i| references(i, out)),
        _ => {}
    }
}

#[test]
fn cloudformation_managed_login_is_off_by_default() {
    let t = template();
    for name in [
        "ManagedLoginDomain",
        "ManagedLoginCertificateArn",
        "ManagedLoginCallbackUrl",
        "ManagedLoginSignOutUrl",
        "ManagedLoginIdentityProviders",
        "OidcProviderName",
        "OidcIssuer",
        "OidcClientId",
        "OidcClientSecret",
    ] {
        let p = &t["parameters"][lower_first(name)];
        assert_eq!(p["type"], "String", "{name}");
        assert_eq!(p["default"], "", "{name}: empty, off");
    }
    assert_eq!(t["parameters"]["oidcClientSecret"]["noEcho"], true);
    rules_accept(&t, &[]).expect("the defaults pass the rules");

    let t = template_with(&[]);
    let r = &t["resources"];
    for ty in [
        "AWS::Cognito::UserPoolDomain",
        "AWS::Cognito::UserPoolIdentityProvider",
    ] {
        assert!(
            r.as_object()
                .expect("resources")
                .values()
                .all(|x| x["type"] != ty),
            "no {ty} by default"
        );
    }
    let client = &r["userPoolClient"]["properties"];
    for key in [
        "allowedOAuthFlowsUserPoolClient",
        "allowedOAuthFlows",
        "allowedOAuthScopes",
        "callbackURLs",
        "logoutURLs",
        "supportedIdentityProviders",
    ] {
        assert!(client.get(key).is_none(), "{key} by default");
    }
    let env = env_of(container(
        &r["taskDefinition"]["properties"],
        SIDECAR,
        "cloudformation.yaml",
    ));
    assert!(
        env.iter().all(|(n, _)| !n.starts_with("SIDECAR_SESSION__")),
        "no browser sessions by default: {env:?}"
    );
}

#[test]
fn cloudformation_managed_login_client_and_sidecar_agree() {
    let raw = template();
    let toml = repo("proxy.toml");
    let defaults = Config::default().session.managed_login;
    for case in &MANAGED_LOGIN {
        let what = format!("{:?}", case.params);
        rules_accept(&raw, case.params).unwrap_or_else(|e| panic!("{what}: refused by {e}"));
        let t = template_with(case.params);
        let r = &t["resources"];
        let eval = |v: &Json| render_with(&raw, case.params, v);

        // The pool's domain, and the provider the stack adds.
        let domain = &r["userPoolDomain"];
        assert_eq!(domain["type"], "AWS::Cognito::UserPoolDomain", "{what}");
        let dp = &domain["properties"];
        assert_eq!(ref_of(&dp["userPoolId"]), Some("UserPool"), "{what}");
        assert_eq!(ref_of(&dp["domain"]), Some("ManagedLoginDomain"), "{what}");
        assert_eq!(
            dp.get("customDomainConfig")
                .map(|c| ref_of(&c["certificateArn"])),
            case.custom_domain
                .then_some(Some("ManagedLoginCertificateArn")),
            "{what}"
        );
        assert_eq!(
            t["outputs"].get("managedLoginCloudFrontDomain").is_some(),
            case.custom_domain
        );
        let idp = &r["oidcIdentityProvider"];
        assert_eq!(!idp.is_null(), case.oidc, "{what}: the OIDC provider");
        if case.oidc {
            assert_eq!(idp["type"], "AWS::Cognito::UserPoolIdentityProvider");
            let ip = &idp["properties"];
            assert_eq!(ip["providerType"], "OIDC");
            assert_eq!(ref_of(&ip["userPoolId"]), Some("UserPool"));
            assert_eq!(ref_of(&ip["providerName"]), Some("OidcProviderName"));
            let d = &ip["providerDetails"];
            for (key, param) in [
                ("client_id", "OidcClientId"),
                ("client_secret", "OidcClientSecret"),
                ("oidc_issuer", "OidcIssuer"),
            ] {
                assert_eq!(ref_of(&d[key]), Some(param), "ProviderDetails.{key}");
            }
            assert!(strings(&d["authorize_scopes"])[0]
                .split(' ')
                .any(|s| s == "openid"));
            assert_eq!(ip["attributeMapping"]["email"], "email");
        }

        // The app client: the code grant with the sidecar's scopes, its URLs, the providers.
        let client = &r["userPoolClient"]["properties"];
        if case.oidc {
            let mut refs = BTreeSet::new();
            references(client, &mut refs);
            assert!(
                refs.contains("OidcIdentityProvider"),
                "{what}: the client must name the provider through a Ref, so that it is created after it"
            );
        }
        assert_eq!(client["allowedOAuthFlowsUserPoolClient"], true, "{what}");
        assert_eq!(client["allowedOAuthFlows"], json!(["code"]), "{what}");
        assert_eq!(
            client["allowedOAuthScopes"],
            json!(defaults.scopes),
            "{what}"
        );
        assert_eq!(eval(&client["callbackURLs"]), json!([CALLBACK]), "{what}");
        assert_eq!(
            eval(&client["logoutURLs"]),
            json!([case.sign_out_url]),
            "{what}"
        );
        let supported: Vec<String> = strings(&eval(&client["supportedIdentityProviders"]));
        let mut want = vec!["COGNITO".to_owned()];
        want.extend(case.buttons.iter().map(|b| (*b).to_owned()));
        assert_eq!(supported, want, "{what}: SupportedIdentityProviders");

        // The sidecar: its environment loads, and says the same.
        let task = &r["taskDefinition"]["properties"];
        check_task_definition(task, &what, false);
        let env: Vec<(String, String)> = env_of(container(task, SIDECAR, &what))
            .into_iter()
            .map(|(k, v)| match eval(&v) {
                Json::String(s) => (k, s),
                other => panic!("{what}: {k}: {other} is not a string"),
            })
            .collect();
        let pool_policy = &r["userPool"]["properties"]["policies"]["passwordPolicy"];
        let policy = PasswordPolicy {
            min_length: pool_policy["minimumLength"].as_u64().map(|n| n as u32),
            uppercase: pool_policy["requireUppercase"] == true,
            lowercase: pool_policy["requireLowercase"] == true,
            numbers: pool_policy["requireNumbers"] == true,
            symbols: pool_policy["requireSymbols"] == true,
        };
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            for (k, v) in &env {
                jail.set_env(k, v);
            }
            let config = Config::load(&toml).map_err(|e| format!("{what}: {e}"))?;
            let derived = config.validate().map_err(|e| format!("{what}: {e}"))?;
            assert!(config.session.enabled, "{what}: browser sessions");
            // The forms show the pool's policy without DescribeUserPool (not in the task role).
            assert_eq!(
                config.session.password_policy.as_deref(),
                Some(policy.describe().as_str()),
                "{what}: session.password_policy is the pool's PasswordPolicy"
            );
            let m = derived.managed_login.expect("federated sign-in on");
            assert_eq!(m.domain, case.domain, "{what}");
            assert_eq!(m.callback_url, CALLBACK, "{what}");
            assert_eq!(m.sign_out_url, case.sign_out_url, "{what}");
            assert_eq!(m.identity_providers, case.buttons, "{what}");
            assert_eq!(m.other_ways, case.other_ways, "{what}");
            assert_eq!(
                m.scopes,
                defaults.scopes.join(" "),
                "{what}: the client's scopes"
            );
            Ok(())
        });
    }
}

#[test]
fn cloudformation_rules_refuse_an_incomplete_managed_login() {
    let t = template();
    let ok: &Params = &[
        ("ManagedLoginDomain", "legacy-app-login"),
        ("ManagedLoginCallbackUrl", CALLBACK),
        ("ManagedLoginIdentityProviders", "Google"),
        ("DesiredCount", "1"),
    ];
    rules_accept(&t, ok).expect("complete");
    let with = |change: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        let mut p: Vec<_> = ok
            .iter()
            .filter(|(k, _)| change.iter().all(|(c, _)| c != k))
            .copied()
            .collect();
        p.extend_from_slice(change);
        p
    };
    for (change, refused_by) in [
        (
            with(&[("ManagedLoginCallbackUrl", "")]),
            "ManagedLoginIsComplete",
        ),
        (
            with(&[("ManagedLoginIdentityProviders", "")]),
            "ManagedLoginIsComplete",
        ),
        // Two tasks keep their sessions apart without the shared cache.
        (with(&[("DesiredCount", "2")]), "ManagedLoginIsComplete"),
        (
            vec![(
                "ManagedLoginCertificateArn",
                "arn:aws:acm:us-east-1:123456789012:certificate/0123abcd",
            )],
            "ManagedLoginCertificateNeedsADomain",
        ),
        (
            with(&[("OidcProviderName", "Okta")]),
            "OidcProviderIsComplete",
        ),
        (vec![("OidcProviderName", "Okta")], "OidcProviderIsComplete"),
    ] {
        let err = rules_accept(&t, &change).expect_err(&format!("{change:?} must be refused"));
        assert!(
            err.starts_with(&lower_first(refused_by)),
            "{change:?}: {err}"
        );
    }
    rules_accept(
        &t,
        &with(&[("DesiredCount", "2"), ("SharedCache", "valkey")]),
    )
    .expect("two tasks sharing the sessions");
}

/// Every `SIDECAR_*` name the deployment files set is a configuration key's variable (the
/// generated reference's), in any branch of the template.
#[test]
fn every_sidecar_variable_of_the_deployment_files_is_a_configuration_key() {
    let known: BTreeSet<String> = reference::rows().into_iter().flat_map(|r| r.env).collect();
    let mut names = Vec::new();
    let mut text = Vec::new();
    all_strings(&template(), &mut text);
    all_strings(&read_json("deploy/ecs/task-definition.json"), &mut text);
    for s in text {
        if s.starts_with("SIDECAR_")
            && s.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            names.push(s);
        }
    }
    assert!(names
        .iter()
        .any(|n| n == "SIDECAR_SESSION__MANAGED_LOGIN__CALLBACK_URL"));
    let unknown: Vec<&String> = names.iter().filter(|n| !known.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "not a configuration key's variable: {unknown:?}"
    );
}

/// Placeholder → a sample value, for loading the task definition's environment.
const PLACEHOLDERS: [(&str, &str); 4] = [
    ("<REGION>", "eu-west-1"),
    ("<POOL_ID>", "eu-west-1_Example"),
    ("<APP_CLIENT_ID>", "exampleclientid0123456789"),
    ("<VPC_CIDR>", "10.0.0.0/16"),
];

#[test]
fn task_definition_environment_is_a_valid_configuration_over_proxy_toml() {
    let task = read_json("deploy/ecs/task-definition.json");
    let sidecar = container(&task, SIDECAR, "task-definition.json");
    let port = sidecar["portMappings"][0]["containerPort"]
        .as_u64()
        .expect("port");
    let stop = sidecar["stopTimeout"].as_u64().expect("stopTimeout");
    let env: Vec<(String, String)> = env_of(sidecar)
        .into_iter()
        .map(|(k, v)| {
            let mut v = v.as_str().expect("a string value").to_owned();
            for (p, sample) in PLACEHOLDERS {
                v = v.replace(p, sample);
            }
            assert!(!v.contains('<'), "{k}: unknown placeholder in {v}");
            (k, v)
        })
        .collect();
    let toml = repo("proxy.toml");

    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        for (k, v) in &env {
            jail.set_env(k, v);
        }
        // What ECS injects from Secrets Manager.
        jail.set_env(SECRET_ENV, "injected-secret");
        let config = Config::load(&toml).map_err(|e| e.to_string())?;
        let derived = config.validate().map_err(|e| e.to_string())?;
        assert_eq!(derived.region, "eu-west-1");
        assert_eq!(
            config.cognito.user_pool_id.as_deref(),
            Some("eu-west-1_Example")
        );
        assert_eq!(
            config.cognito.client_id.as_deref(),
            Some("exampleclientid0123456789")
        );
        assert_eq!(
            config.cognito.client_secret.as_deref(),
            Some("injected-secret")
        );
        assert_eq!(config.cognito.auth_flow, AuthFlow::AdminUserPassword);
        assert_eq!(config.upstream.url, "http://127.0.0.1:3000");
        assert_eq!(u64::from(config.server.listen.port()), port);
        assert!(config.server.listen.ip().is_unspecified());
        assert_eq!(config.log.format, LogFormat::Json);
        let proxies: Vec<String> = config
            .server
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(proxies, ["10.0.0.0/16"]);
        assert_eq!(config.health.ready_path, "/readyz");
        assert!(stop > config.server.shutdown_grace.as_secs());
        Ok(())
    });
}

#[test]
fn proxy_toml_loads_with_the_real_loader() {
    let toml = repo("proxy.toml");
    // In a Jail only to keep the other tests' environments out; the process environment is
    // merged in as it is, and whatever it holds, the file must parse.
    figment::Jail::expect_with(|_| {
        let config: Config = Config::figment(&toml)
            .extract()
            .map_err(|e| e.to_string())?;
        Config::load(&toml).map_err(|e| e.to_string())?;
        assert!(config.server.shutdown_grace.as_secs() < 30);
        Ok(())
    });
}

/// The image's default configuration is proxy.toml cut at its first `[[routes]]` (the
/// Dockerfile's sed): that only drops the demo rules if nothing but route tables follows.
#[test]
fn image_config_is_proxy_toml_without_its_demo_routes() {
    let text = read("proxy.toml");
    let lines: Vec<&str> = text.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.starts_with("[[routes]]"))
        .expect("proxy.toml has demo [[routes]]");
    for l in &lines[first..] {
        if l.trim_start().starts_with('[') {
            assert_eq!(
                l.trim(),
                "[[routes]]",
                "only [[routes]] tables may follow the first one in proxy.toml: the image's \
                 config drops everything after it (deploy/Dockerfile)"
            );
        }
    }
    let image_config = lines[..first].join("\n");
    let toml = repo("proxy.toml");
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file("image.toml", &image_config)?;
        let config = Config::load(Path::new("image.toml")).map_err(|e| e.to_string())?;
        assert!(
            config.routes.is_empty(),
            "no rule: every path needs a token"
        );
        let full = Config::load(&toml).map_err(|e| e.to_string())?;
        assert!(!full.routes.is_empty());
        // Everything but the routes is the same.
        let mut a = serde_json::to_value(&config).map_err(|e| e.to_string())?;
        let mut b = serde_json::to_value(&full).map_err(|e| e.to_string())?;
        a["routes"] = Json::Null;
        b["routes"] = Json::Null;
        assert_eq!(a, b);
        Ok(())
    });
    let dockerfile = read("deploy/Dockerfile");
    assert!(dockerfile.contains(r"sed -e '/^\[\[routes\]\]/,$d'"));
}

/// `ARG NAME=default` values, to resolve `FROM ${NAME}`.
fn arg_default<'a>(dockerfile: &'a str, name: &str) -> Option<&'a str> {
    dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("ARG "))
        .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
}

#[test]
fn dockerfile_builds_with_the_release_script_and_runs_as_the_task_definition_expects() {
    let script = read("deploy/build-release.sh");
    assert!(script.contains("\ncargo build --release --locked"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(repo("deploy/build-release.sh"))
            .expect("build-release.sh")
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "deploy/build-release.sh is executable");
    }

    let d = read("deploy/Dockerfile");
    let runs: Vec<&str> = d
        .lines()
        .filter(|l| l.contains("deploy/build-release.sh"))
        .collect();
    assert!(
        runs.iter()
            .filter(|l| !l.starts_with("COPY") && !l.starts_with('#'))
            .count()
            >= 2,
        "dependencies and the sidecar are both built by deploy/build-release.sh: {runs:?}"
    );
    assert!(
        !d.contains("cargo build"),
        "the Dockerfile builds only through the script"
    );

    let froms: Vec<&str> = d.lines().filter_map(|l| l.strip_prefix("FROM ")).collect();
    assert_eq!(froms.len(), 2, "two stages");
    let runtime = froms[1].trim();
    let runtime = match runtime.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        Some(arg) => arg_default(&d, arg).expect("ARG default of the runtime image"),
        None => runtime,
    };
    assert!(
        runtime.contains("distroless") && runtime.ends_with(":nonroot"),
        "{runtime}"
    );
    let builder = froms[0].split_whitespace().next().unwrap_or("");
    let builder = match builder.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        Some(arg) => arg_default(&d, arg).expect("ARG default of the build image"),
        None => builder,
    };
    assert!(
        builder.ends_with("-bookworm") && runtime.contains("debian12"),
        "build on the runtime's Debian release (glibc): {builder} / {runtime}"
    );

    let user = d
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .expect("USER");
    assert!(!user.starts_with("root") && !user.starts_with("0:") && user != "0");

    assert!(d
        .lines()
        .any(|l| l.starts_with("COPY --from=build") && l.ends_with(&format!(" {BINARY}"))));
    assert!(d.contains("SIDECAR_LOG__FORMAT=json"));
    assert!(d.contains(&format!("SIDECAR_SERVER__LISTEN=0.0.0.0:{SIDECAR_PORT}")));
    assert!(d.contains(&format!("EXPOSE {SIDECAR_PORT}")));
    assert!(d.contains(&format!("CMD [\"{BINARY}\", \"healthcheck\"]")));
    assert!(d.contains(&format!("ENTRYPOINT [\"{BINARY}\"]")));

    // The binary reads ./proxy.toml: the config sits in the working directory, so the
    // task definition's `healthcheck` (no --config) reads the same file as `run`.
    let workdir = d
        .lines()
        .filter_map(|l| l.strip_prefix("WORKDIR "))
        .next_back()
        .expect("WORKDIR");
    assert!(d
        .lines()
        .any(|l| l.starts_with("COPY --from=build")
            && l.ends_with(&format!(" {workdir}/proxy.toml"))));
}

/// Cargo reads every `[[bench]]`, `[[test]]` and `[[example]]` target the manifest names
/// before it builds anything, so the image's build stage needs their files too.
#[test]
fn dockerfile_copies_every_target_the_manifest_names() {
    let manifest: Json = figment::Figment::from(Toml::file(repo("Cargo.toml")))
        .extract()
        .expect("Cargo.toml");
    let d = read("deploy/Dockerfile");
    let ignore = read("deploy/Dockerfile.dockerignore");
    for (table, dir) in [
        ("bench", "benches"),
        ("test", "tests"),
        ("example", "examples"),
    ] {
        for target in manifest[table].as_array().into_iter().flatten() {
            let path = match target["path"].as_str() {
                Some(p) => p.to_owned(),
                None => format!("{dir}/{}.rs", target["name"].as_str().unwrap_or("?")),
            };
            let top = path.split('/').next().unwrap_or("");
            assert!(
                d.lines().any(|l| l == format!("COPY {top} {top}")),
                "[[{table}]] {path}: deploy/Dockerfile must `COPY {top} {top}` before building"
            );
            assert!(
                ignore.lines().any(|l| l == format!("!{top}")),
                "[[{table}]] {path}: deploy/Dockerfile.dockerignore must let {top} through"
            );
        }
    }
    // The dummy build stage stands in for exactly these two.
    assert_eq!(manifest["lib"]["path"], "src/lib.rs");
    for bin in manifest["bin"].as_array().into_iter().flatten() {
        assert_eq!(bin["path"], "src/main.rs", "{bin}");
    }
}
