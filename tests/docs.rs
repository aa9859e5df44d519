//! The book (`docs/`, mdBook) holds together: every page is in `docs/src/SUMMARY.md` and every
//! SUMMARY entry has its file; every relative link of a page (`(page.md)`, `(page.md#anchor)`,
//! `(#anchor)`, an image) names a file that exists and, with an anchor, a heading of that page
//! whose mdBook id is the anchor; README.md's links into the book resolve the same way.
//! The configuration page's reference table is what the code generates
//! (`cognito_sidecar::config::reference`).
//! `deploy/book.sh` builds the book (`create-missing = false` fails an entry without a file);
//! this test is the link and anchor check, in every `deploy/test.sh` run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// mdBook's id of a heading's text: lower case, alphanumerics, `-` and `_` kept, whitespace
/// becomes `-`, every other character dropped.
fn normalize_id(text: &str) -> String {
    text.chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                Some(c.to_lowercase().collect::<String>())
            } else if c.is_whitespace() {
                Some("-".to_owned())
            } else {
                None
            }
        })
        .collect()
}

/// The lines of `text` outside fenced code blocks.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut fence: Option<&str> = None;
    let mut out = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(open), Some(m)) if open == m => fence = None,
            (None, None) => out.push(line),
            _ => {}
        }
    }
    out
}

/// What a heading renders as text: links become their text, code spans and emphasis marks go.
fn heading_text(raw: &str) -> String {
    let mut s = String::new();
    let mut rest = raw;
    // [text](url) -> text
    while let Some(open) = rest.find('[') {
        let Some(mid) = rest[open..].find("](").map(|m| open + m) else {
            break;
        };
        let Some(close) = rest[mid..].find(')').map(|c| mid + c) else {
            break;
        };
        s.push_str(&rest[..open]);
        s.push_str(&rest[open + 1..mid]);
        rest = &rest[close + 1..];
    }
    s.push_str(rest);
    s.replace(['`', '*'], "")
}

/// The ids of a page's headings, in order, duplicates numbered as mdBook does (`x`, `x-1`, ...).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for line in prose_lines(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let raw = line[hashes..].trim().trim_end_matches('#').trim();
        let id = normalize_id(&heading_text(raw));
        let n = seen.entry(id.clone()).or_insert(0);
        ids.insert(if *n == 0 {
            id.clone()
        } else {
            format!("{id}-{n}")
        });
        *n += 1;
    }
    ids
}

/// Every link target of `text` outside code: `](target)` and `src="target"`.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose_lines(text) {
        // Code spans hold no links; keep the brackets of `[`code`](url)`.
        let mut plain = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                plain.push_str(part);
            }
        }
        let mut rest = plain.as_str();
        while let Some(at) = rest.find("](") {
            let tail = &rest[at + 2..];
            let end = tail.find(')').unwrap_or(tail.len());
            out.push(tail[..end].trim().to_owned());
            rest = &tail[end..];
        }
        let mut rest = plain.as_str();
        while let Some(at) = rest.find("src=\"") {
            let tail = &rest[at + 5..];
            let end = tail.find('"').unwrap_or(tail.len());
            out.push(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    out
}

/// `base/rel` with `.` and `..` resolved, without touching the file system.
fn join(base: &Path, rel: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in base.join(rel).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The files the check reads, by path relative to the repository (`README.md`,
/// `docs/src/*.md`), and the files that exist (for links to images and other files).
struct Tree {
    pages: BTreeMap<PathBuf, String>,
    files: BTreeSet<PathBuf>,
}

/// Every problem of the book's pages and README.md's links into it, one line each.
fn problems(tree: &Tree) -> Vec<String> {
    let mut problems = Vec::new();
    let src = Path::new("docs/src");
    let summary_path = src.join("SUMMARY.md");
    let Some(summary) = tree.pages.get(&summary_path) else {
        return vec!["docs/src/SUMMARY.md is missing".to_owned()];
    };
    let listed: BTreeSet<PathBuf> = link_targets(summary)
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| join(src, t.split('#').next().unwrap_or_default()))
        .collect();
    for page in tree.pages.keys() {
        if page.starts_with(src) && *page != summary_path && !listed.contains(page) {
            problems.push(format!(
                "{}: not in docs/src/SUMMARY.md (every page must be)",
                page.display()
            ));
        }
    }
    let ids: BTreeMap<&PathBuf, BTreeSet<String>> =
        tree.pages.iter().map(|(p, t)| (p, anchors(t))).collect();
    for (page, text) in &tree.pages {
        let dir = page.parent().unwrap_or(Path::new(""));
        for target in link_targets(text) {
            if target.is_empty() {
                problems.push(format!("{}: an empty link target", page.display()));
                continue;
            }
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                page.clone()
            } else {
                join(dir, path)
            };
            if page == Path::new("README.md") && !path.is_empty() && !file.starts_with(src) {
                // README.md's other relative links: files of the repository.
                if !tree.files.contains(&file) && !tree.files.iter().any(|f| f.starts_with(&file)) {
                    problems.push(format!("README.md: ({target}) names no file"));
                }
                continue;
            }
            let Some(page_ids) = ids.get(&file) else {
                if path.ends_with(".md") || !tree.files.contains(&file) {
                    problems.push(format!(
                        "{}: ({target}) names no page or file ({})",
                        page.display(),
                        file.display()
                    ));
                }
                continue;
            };
            if let Some(anchor) = anchor {
                if !page_ids.contains(anchor) {
                    problems.push(format!(
                        "{}: ({target}): {} has no heading with the id `{anchor}`",
                        page.display(),
                        file.display()
                    ));
                }
            }
        }
    }
    problems
}

fn read_tree() -> Tree {
    let root = repo();
    let mut pages = BTreeMap::new();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    pages.insert(PathBuf::from("README.md"), readme);
    let mut files = BTreeSet::new();
    let mut stack = vec![
        PathBuf::from("docs"),
        PathBuf::from("deploy"),
        PathBuf::from("src"),
    ];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let rel = dir.join(entry.file_name());
            if rel.starts_with("docs/book") {
                continue; // the built book
            }
            if entry.path().is_dir() {
                stack.push(rel);
            } else {
                if rel.starts_with("docs/src") && rel.extension().is_some_and(|e| e == "md") {
                    let text = std::fs::read_to_string(entry.path()).expect("a page");
                    pages.insert(rel.clone(), text);
                }
                files.insert(rel);
            }
        }
    }
    Tree { pages, files }
}

#[test]
fn every_page_is_listed_and_every_link_and_anchor_resolves() {
    let tree = read_tree();
    assert!(
        tree.pages.len() > 10,
        "docs/src holds the book's pages (found {})",
        tree.pages.len()
    );
    let problems = problems(&tree);
    assert!(
        problems.is_empty(),
        "broken links in the book or README.md:\n{}",
        problems.join("\n")
    );
}

#[test]
fn readme_links_into_the_book() {
    let tree = read_tree();
    let readme = &tree.pages[Path::new("README.md")];
    let into_book = link_targets(readme)
        .into_iter()
        .filter(|t| t.starts_with("docs/src/"))
        .count();
    assert!(
        into_book >= 10,
        "README.md links into docs/src/ ({into_book} links)"
    );
}

#[test]
fn ids_are_mdbooks() {
    assert_eq!(
        normalize_id(&heading_text("`POST /api/user/refresh`")),
        "post-apiuserrefresh"
    );
    assert_eq!(
        normalize_id(&heading_text("Forward-auth (nginx, Traefik, Envoy)")),
        "forward-auth-nginx-traefik-envoy"
    );
    assert_eq!(
        normalize_id(&heading_text("The user's context for threat protection")),
        "the-users-context-for-threat-protection"
    );
    assert_eq!(
        normalize_id(&heading_text("[Routes](gate.md) and *more*")),
        "routes-and-more"
    );
    let ids = anchors("# IAM\n\n```sh\n# not a heading\n```\n## IAM\n### IAM\n");
    let want: BTreeSet<String> = ["iam", "iam-1", "iam-2"].map(String::from).into();
    assert_eq!(ids, want);
}

/// The check itself finds what it must: a missing page, a dead anchor, an unlisted page, a
/// missing image, a README link to a page that is not there.
#[test]
fn the_check_finds_broken_links() {
    let page = |p: &str, t: &str| (PathBuf::from(p), t.to_owned());
    let tree = Tree {
        pages: [
            page("README.md", "[a](docs/src/a.md#nowhere) [b](docs/src/gone.md)"),
            page("docs/src/SUMMARY.md", "- [A](a.md)\n- [Missing](missing.md)\n"),
            page(
                "docs/src/a.md",
                "# A\n\n## Here\n[ok](#here) [dead](#there) [x](b.md#b) <img src=\"images/no.png\">\n`[code](#not-a-link)`\n",
            ),
            page("docs/src/b.md", "# B\n"),
        ]
        .into(),
        files: BTreeSet::new(),
    };
    let found = problems(&tree).join("\n");
    for want in [
        "docs/src/b.md: not in docs/src/SUMMARY.md",
        "docs/src/SUMMARY.md: (missing.md) names no page",
        "docs/src/a.md: (#there): docs/src/a.md has no heading with the id `there`",
        "docs/src/a.md: (images/no.png) names no page or file",
        "README.md: (docs/src/a.md#nowhere): docs/src/a.md has no heading",
        "README.md: (docs/src/gone.md) names no page",
    ] {
        assert!(found.contains(want), "expected {want:?} among:\n{found}");
    }
    assert!(
        !found.contains("(#here)"),
        "a good anchor is no problem:\n{found}"
    );
    assert!(
        !found.contains("b.md#b"),
        "a good link to another page is no problem:\n{found}"
    );
    assert!(
        !found.contains("not-a-link"),
        "a code span is no link:\n{found}"
    );
}

/// The configuration reference in docs/src/configuration.md is the generated one, and every key
/// in it has a meaning (its field's doc comment).
#[test]
fn the_configuration_page_holds_the_generated_reference() {
    use cognito_sidecar::config::reference;
    let page = std::fs::read_to_string(repo().join("docs/src/configuration.md")).expect("page");
    let generated = reference::splice(&page, &reference::markdown())
        .expect("docs/src/configuration.md has the config-reference markers");
    assert!(
        generated == page,
        "docs/src/configuration.md's reference table is stale: regenerate it with \
         `cargo run -- config-reference --write docs/src/configuration.md`"
    );
    let rows = reference::rows();
    assert!(rows.len() > 100, "{} keys", rows.len());
    let without: Vec<&str> = rows
        .iter()
        .filter(|r| r.description.split_whitespace().count() < 3)
        .map(|r| r.key.as_str())
        .collect();
    assert!(
        without.is_empty(),
        "keys without a meaning: give their fields a doc comment (its first paragraph is the \
         meaning), then regenerate: {without:?}"
    );
}
