//! The house rules, read from `src/`: every module sits on a floor (`src/lib.rs` draws them),
//! and a module imports only from floors below its own (or from inside its own folder), so
//! there can be no import circle. `http` imports nothing of the crate; `gate`, `upstream` and
//! `idp` own their error enums and never import `error`. Each folder's `mod.rs` says what it
//! owns and what it must never import, no file holds more than 700 lines of code, and only
//! `app` reads the whole `Config`.
//!
//! Imports are read as written: every `crate::<module>` path in a file's code (its test module
//! left out), and `super::` in a top-level file (which is the crate root).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module and its floor: lower floors know nothing of higher ones.
const FLOORS: &[(&str, u8)] = &[
    ("http", 0),
    ("clock", 0),
    ("config", 1),
    ("telemetry", 2),
    ("gate", 3),
    ("upstream", 3),
    ("idp", 3),
    ("fleet", 4),
    ("error", 4),
    ("limit", 5),
    ("auth_api", 6),
    ("browser", 6),
    ("request", 7),
    ("app", 8),
    ("net", 9),
];

/// Modules that must never import `error` (they own their error enums; `error` maps them).
const OWN_ERRORS: &[&str] = &[
    "http",
    "clock",
    "config",
    "telemetry",
    "gate",
    "upstream",
    "idp",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.file_name().is_some_and(|n| n == "tests.rs") {
            // A module's test tables split out of it (`#[cfg(test)] mod tests;`): test code,
            // left out as the `#[cfg(test)]` modules of other files are.
            continue;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The top-level module a file belongs to (`src/gate/verify/jwks.rs` → `gate`), or `None`
/// for the crate root and the binary.
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).expect("under src");
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.as_str() {
        "lib.rs" | "main.rs" => None,
        f => Some(f.trim_end_matches(".rs").to_string()),
    }
}

/// The crate modules `code` names: `crate::x` anywhere, and `super::x` when `top_level`.
fn imports(code: &str, top_level: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut scan = |prefix: &str| {
        for (i, _) in code.match_indices(prefix) {
            // `crate::` inside an identifier (`cognito_sidecar::crate::`) is no path start.
            if i > 0 && code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &code[i + prefix.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    };
    scan("crate::");
    if top_level {
        scan("super::");
    }
    out
}

/// A file's code without its `#[cfg(test)]` module and without comments.
fn code_of(text: &str) -> String {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    code.lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with("//")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every import of every module: (importer, imported) → the files that make it.
fn edges() -> BTreeMap<(String, String), Vec<String>> {
    let floors: BTreeMap<&str, u8> = FLOORS.iter().copied().collect();
    let mut edges: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for file in rust_files(&src()) {
        let Some(module) = module_of(&file) else {
            continue;
        };
        assert!(
            floors.contains_key(module.as_str()),
            "{} is in module `{module}`, which has no floor in tests/architecture.rs",
            file.display()
        );
        let top_level = file.parent() == Some(src().as_path());
        let text = std::fs::read_to_string(&file).expect("source");
        for imported in imports(&code_of(&text), top_level) {
            if imported == module {
                continue;
            }
            let rel = file
                .strip_prefix(src())
                .expect("under src")
                .display()
                .to_string();
            edges
                .entry((module.clone(), imported))
                .or_default()
                .push(rel);
        }
    }
    edges
}

#[test]
fn imports_point_down_the_floors_only() {
    let floors: BTreeMap<&str, u8> = FLOORS.iter().copied().collect();
    let mut wrong = Vec::new();
    for ((from, to), files) in edges() {
        let Some(to_floor) = floors.get(to.as_str()) else {
            wrong.push(format!(
                "{from} imports `crate::{to}`, no module of the house ({files:?})"
            ));
            continue;
        };
        let from_floor = floors[from.as_str()];
        if *to_floor >= from_floor {
            wrong.push(format!(
                "{from} (floor {from_floor}) imports {to} (floor {to_floor}) in {files:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that do not point down:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn leaf_modules_own_their_errors() {
    let wrong: Vec<String> = edges()
        .into_iter()
        .filter(|((from, to), _)| to == "error" && OWN_ERRORS.contains(&from.as_str()))
        .map(|((from, _), files)| format!("{from} imports error in {files:?}"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn there_is_no_import_circle() {
    // Implied by the floors; checked on its own so a floor table edited to admit a circle
    // still fails.
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in edges().into_keys() {
        graph.entry(from).or_default().insert(to);
    }
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut circle = path[i..].to_vec();
            circle.push(n.to_string());
            return Some(circle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for next in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(circle) = visit(n, &graph, &mut Vec::new(), &mut done) {
            panic!("import circle: {}", circle.join(" → "));
        }
    }
}

#[test]
fn only_app_reads_the_whole_configuration() {
    // Every other module is handed its own section (or what `app::settings` derived).
    let mut wrong = Vec::new();
    for file in rust_files(&src()) {
        let Some(module) = module_of(&file) else {
            continue;
        };
        if module == "app" || module == "config" {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&file).expect("source"));
        if names_type(&code, "Config") {
            wrong.push(file.display().to_string());
        }
    }
    assert!(wrong.is_empty(), "these read the whole Config: {wrong:?}");
    assert!(names_type("use crate::config::{Access, Config};", "Config"));
    assert!(!names_type(
        "let s: SdkConfig; LogConfig; ConfigError",
        "Config"
    ));
}

/// Whether `code` names the identifier `name` (not as part of a longer one).
fn names_type(code: &str, name: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices(name)
        .any(|(i, _)| !code[..i].ends_with(ident) && !code[i + name.len()..].starts_with(ident))
}

#[test]
fn every_folder_says_what_it_owns() {
    for entry in std::fs::read_dir(src()).expect("read_dir") {
        let path = entry.expect("entry").path();
        if !path.is_dir() {
            continue;
        }
        // A folder is a module through its mod.rs, or holds the split-out tests of the
        // sibling file of its name (`error.rs` and `error/tests.rs`).
        let sibling = path.with_extension("rs");
        let m = if sibling.exists() {
            sibling
        } else {
            path.join("mod.rs")
        };
        let text = std::fs::read_to_string(&m).unwrap_or_default();
        assert!(
            text.starts_with("//!"),
            "{} must open with a //! saying what the folder owns",
            m.display()
        );
    }
}

#[test]
fn no_file_has_more_than_700_lines_of_code() {
    // Tests excluded: the tables may outweigh the code they check.
    let long: Vec<String> = rust_files(&src())
        .into_iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(&f).expect("source");
            let code = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or(&text)
                .lines()
                .count();
            (code > 700).then(|| format!("{}: {code} lines", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these by what each part owns:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_reader_sees_what_a_file_imports() {
    // The scanner itself, on a table (a test that cannot fail is a defect).
    let code = code_of(
        "use crate::http::body::Body;\n// crate::net in a comment\nfn f() { crate::gate::verify::now(); }\n#[cfg(test)]\nmod tests { use crate::app; }",
    );
    let got: Vec<String> = imports(&code, false).into_iter().collect();
    assert_eq!(got, vec!["gate", "http"]);
    let top: Vec<String> = imports("use super::config::Config;", true)
        .into_iter()
        .collect();
    assert_eq!(top, vec!["config"]);
    assert!(imports("use super::config::Config;", false).is_empty());
}
