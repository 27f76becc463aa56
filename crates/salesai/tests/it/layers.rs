//! The architecture invariant of issues #9 and #24: in every crate of the workspace, at every
//! level of its module tree, sibling modules import one another one way only — no cycle,
//! however long. A module's imports are what its non-test code names through `crate::…`,
//! `super::…` and `self::…` paths; an import of something inside sibling `b` (at any depth) is
//! an edge to `b`. A new import that closes a loop anywhere fails here with the loop spelled out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every crate's source folder, relative to this crate's folder.
const CRATES: &[&str] = &[
    "src",
    "../salesai-core/src",
    "../salesai-db/src",
    "../salesai-providers/src",
    "../salesai-audio/src",
    "../salesai-worker/src",
    "../salesai-slack/src",
    "../salesai-http/src",
];

/// A module path from the crate root: `["web", "calls", "page"]`.
type ModPath = Vec<String>;

/// The module a source file is: `web/calls/mod.rs` → `web::calls`, `web/calls/page.rs` →
/// `web::calls::page`, `lib.rs`/`main.rs` → the root.
fn module_of(src: &Path, file: &Path) -> ModPath {
    let relative = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The paths a piece of code names: each `crate::`, `super::` or `self::` path, expanded through
/// `{…}` groups, as segments (`use super::{a::x, b};` gives `super::a::x` and `super::b`).
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for start in ["crate::", "super::", "self::"] {
        for (at, _) in code.match_indices(start) {
            // Not the tail of a longer identifier (`my_crate::`) or of a longer path
            // (`super::super::` is read once, from its start).
            if code[..at]
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                || code[..at].ends_with("::")
            {
                continue;
            }
            let mut prefix = vec![start.trim_end_matches("::").to_owned()];
            let mut rest = &code[at + start.len()..];
            // More `super::`.
            while let Some(r) = rest.strip_prefix("super::") {
                prefix.push("super".into());
                rest = r;
            }
            expand(rest, prefix, &mut out);
        }
    }
    out
}

fn ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Reads `a::b::{c, d::e}` after `prefix`, pushing every full path.
fn expand(rest: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    let mut rest = rest;
    loop {
        rest = rest.trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        expand(&group[start..i], path.clone(), out);
                        return;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&group[start..i], path.clone(), out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            return;
        }
        let name = ident(rest);
        if name.is_empty() {
            break;
        }
        path.push(name.clone());
        rest = &rest.trim_start()[name.len()..];
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    out.push(path);
}

/// Resolves a named path from `module` to the module path it reaches (the longest known
/// module prefix), `None` outside the crate.
fn resolve(module: &ModPath, named: &[String], modules: &BTreeSet<ModPath>) -> Option<ModPath> {
    let mut base: ModPath = match named.first().map(String::as_str) {
        Some("crate") => Vec::new(),
        Some("self") => module.clone(),
        Some("super") => {
            let mut b = module.clone();
            b.pop();
            b
        }
        _ => return None,
    };
    let mut i = 1;
    while named.get(i).map(String::as_str) == Some("super") {
        base.pop();
        i += 1;
    }
    let mut best = base.clone();
    for seg in &named[i..] {
        base.push(seg.clone());
        if modules.contains(&base) {
            best = base.clone();
        } else {
            break;
        }
    }
    Some(best)
}

/// Every module of a crate with the modules its code reaches.
fn graph(src: &Path) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<ModPath> = files.iter().map(|f| module_of(src, f)).collect();
    let mut out: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for file in &files {
        let module = module_of(src, file);
        let text = std::fs::read_to_string(file).unwrap();
        // Non-test code only, without comments.
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        // `super::` names the parent of the module (from `a/b.rs`, module a::b, it is a; from
        // `a/mod.rs`, module a, the root).
        let reached = out.entry(module.clone()).or_default();
        for named in paths(&code) {
            if let Some(target) = resolve(&module, &named, &modules) {
                reached.insert(target);
            }
        }
    }
    out
}

/// Every loop among siblings, at every level: for each module, its children and which of them
/// reach which (anything inside a child counts as the child).
fn loops(graph: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let parents: BTreeSet<ModPath> = graph
        .keys()
        .filter(|m| !m.is_empty())
        .map(|m| m[..m.len() - 1].to_vec())
        .collect();
    for parent in parents {
        let depth = parent.len();
        let mut siblings: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (module, reached) in graph {
            if module.len() <= depth || module[..depth] != parent[..] {
                continue;
            }
            let from = module[depth].clone();
            let entry = siblings.entry(from.clone()).or_default();
            for target in reached {
                if target.len() > depth && target[..depth] == parent[..] && target[depth] != from {
                    entry.insert(target[depth].clone());
                }
            }
        }
        if let Some(cycle) = cycle(&siblings) {
            let at = if parent.is_empty() {
                "crate".to_owned()
            } else {
                parent.join("::")
            };
            found.push(std::iter::once(format!("in {at}:")).chain(cycle).collect());
        }
    }
    found
}

/// A cycle in `graph`, as the modules along it, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|start| visit(start, graph, &mut Vec::new(), &mut done))
}

#[test]
fn module_imports_go_one_way_at_every_level_of_every_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    for src in CRATES {
        let graph = graph(&root.join(src));
        assert!(graph.len() >= 2, "{src}: the modules were found");
        for found in loops(&graph) {
            problems.push(format!(
                "{src}: {}",
                found.join(" → ").replacen(" → ", " ", 1)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "modules import each other in a loop:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_loops_grouped_imports_and_parents() {
    let mut found = paths(
        "use crate::{config::Config, ops::{doctor, jobs}};\nlet x = super::super::runtime::go();",
    );
    found.sort();
    assert_eq!(
        found,
        vec![
            vec!["crate", "config", "Config"],
            vec!["crate", "ops", "doctor"],
            vec!["crate", "ops", "jobs"],
            vec!["super", "super", "runtime", "go"],
        ]
    );
    let modules: BTreeSet<ModPath> = [
        vec![],
        vec!["web".to_owned()],
        vec!["web".to_owned(), "calls".to_owned()],
        vec!["web".to_owned(), "i18n".to_owned()],
    ]
    .into_iter()
    .collect();
    let calls = vec!["web".to_owned(), "calls".to_owned()];
    assert_eq!(
        resolve(
            &calls,
            &["super".into(), "i18n".into(), "Lang".into()],
            &modules
        ),
        Some(vec!["web".to_owned(), "i18n".to_owned()])
    );
    // A loop two levels down is found and named.
    let g: BTreeMap<ModPath, BTreeSet<ModPath>> = [
        (
            vec!["web".to_owned(), "a".to_owned()],
            vec![vec!["web".to_owned(), "b".to_owned(), "x".to_owned()]],
        ),
        (
            vec!["web".to_owned(), "b".to_owned(), "x".to_owned()],
            vec![vec!["web".to_owned(), "a".to_owned()]],
        ),
        (vec!["web".to_owned(), "b".to_owned()], vec![]),
        (vec!["web".to_owned()], vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.into_iter().collect()))
    .collect();
    assert_eq!(loops(&g), vec![vec!["in web:", "a", "b", "a"]]);
}
