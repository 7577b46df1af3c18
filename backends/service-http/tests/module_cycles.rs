//! No import cycles between the modules of a backend or filter crate.
//!
//! For every crate under `backends/` and `filters/` this reads the files of its module
//! tree (`src/**/*.rs`; `src/bin` and a `main.rs` next to a `lib.rs` are
//! other crate roots and left out) and takes an edge `a → b` for every
//! `crate::b…` path in `a`, and every `super::b…` path that names a sibling
//! module. Comments and `#[cfg(test)]` modules (from the first
//! `#[cfg(test)]` line of a file on) do not count, nor do edges between a
//! module and its own ancestors (a child naming its parent's items is how
//! Rust nests modules). The test fails naming each cycle it finds, e.g.
//! `services: state → data → state`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path inside one crate, `[]` being the crate root.
type Module = Vec<String>;

/// The module of `file` (relative to `src/`): `a/b.rs` and `a/b/mod.rs`
/// are `a::b`, `lib.rs` / `main.rs` the root.
fn module_of(file: &Path) -> Module {
    let mut parts: Vec<String> = file
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if !(stem == "mod" || (parts.is_empty() && (stem == "lib" || stem == "main"))) {
            parts.push(stem.to_owned());
        }
    }
    parts
}

/// The code of a file without comments and without its test modules.
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        let line = match line.find("//") {
            // `//` inside a string literal (a URL) keeps the line.
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The identifiers of each `prefix::a::b…` path in `code`.
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let mut idents = Vec::new();
        let mut tail = rest;
        loop {
            let end = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            if end == 0 {
                break;
            }
            idents.push(&tail[..end]);
            match tail[end..].strip_prefix("::") {
                Some(t) => tail = t,
                None => break,
            }
        }
        // `crate::{a, b}` groups name several modules.
        if idents.is_empty() && rest.starts_with('{') {
            if let Some(close) = rest.find('}') {
                for item in rest[1..close].split(',') {
                    let first = item.trim().split("::").next().unwrap_or("").trim();
                    if !first.is_empty() {
                        found.push(vec![first]);
                    }
                }
            }
        }
        if !idents.is_empty() {
            found.push(idents);
        }
    }
    found
}

/// The longest module among `modules` that `path` (from the root) starts
/// with.
fn resolve(modules: &BTreeSet<Module>, path: &[&str]) -> Option<Module> {
    (1..=path.len()).rev().find_map(|n| {
        let m: Module = path[..n].iter().map(|s| (*s).to_owned()).collect();
        modules.contains(&m).then_some(m)
    })
}

/// The module graph of one crate given as `(file relative to src, text)`.
fn graph(files: &[(PathBuf, String)]) -> BTreeMap<Module, BTreeSet<Module>> {
    let modules: BTreeSet<Module> = files.iter().map(|(f, _)| module_of(f)).collect();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (file, text) in files {
        let from = module_of(file);
        let code = code(text);
        let mut targets = Vec::new();
        for path in paths_after(&code, "crate::") {
            targets.extend(resolve(&modules, &path));
        }
        if let Some((_, parent)) = from.split_last() {
            for path in paths_after(&code, "super::") {
                let full: Vec<&str> = parent
                    .iter()
                    .map(String::as_str)
                    .chain(path.iter().copied())
                    .collect();
                targets.extend(resolve(&modules, &full));
            }
        }
        let out = edges.entry(from.clone()).or_default();
        for to in targets {
            let related = to.starts_with(&from) || from.starts_with(&to);
            if !related {
                out.insert(to);
            }
        }
    }
    edges
}

/// Every cycle of `edges`, each as the modules along it (first repeated
/// last), found by depth-first search from each module in order.
fn cycles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    fn visit(
        m: &Module,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        stack: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
        found: &mut Vec<Vec<Module>>,
    ) {
        if let Some(i) = stack.iter().position(|s| s == m) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(m.clone());
            found.push(cycle);
            return;
        }
        if done.contains(m) {
            return;
        }
        stack.push(m.clone());
        for to in edges.get(m).into_iter().flatten() {
            visit(to, edges, stack, done, found);
        }
        stack.pop();
        done.insert(m.clone());
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        visit(m, edges, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

fn show(cycle: &[Module]) -> String {
    cycle
        .iter()
        .map(|m| {
            if m.is_empty() {
                "crate".to_owned()
            } else {
                m.join("::")
            }
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

/// The `.rs` files of a crate's module tree, relative to `src`.
fn crate_files(src: &Path) -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, src: &Path, out: &mut Vec<(PathBuf, String)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(src).unwrap_or(&p).to_path_buf();
            if p.is_dir() {
                if rel != Path::new("bin") {
                    walk(&p, src, out);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                out.push((rel, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(src, src, &mut out);
    if src.join("lib.rs").exists() {
        out.retain(|(f, _)| f != Path::new("main.rs"));
    }
    out.sort();
    out
}

/// The cycles of every crate with a `src/` under `dir` (relative to this
/// crate), as `crate: a → b → a`; at least `min_crates` crates and some
/// module edges must be found, so a moved tree cannot pass unread.
fn cycles_under(dir: &str, min_crates: usize) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut crates: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{dir} is not readable: {e}"))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("src").is_dir())
        .collect();
    crates.sort();
    assert!(
        crates.len() >= min_crates,
        "expected every crate of {dir}, got {crates:?}"
    );
    let mut problems = Vec::new();
    let mut edge_count = 0;
    for dir in &crates {
        let edges = graph(&crate_files(&dir.join("src")));
        edge_count += edges.values().map(BTreeSet::len).sum::<usize>();
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        for c in cycles(&edges) {
            problems.push(format!("{name}: {}", show(&c)));
        }
    }
    // The scan must see the crates' imports at all.
    assert!(
        edge_count > 20,
        "{dir}: only {edge_count} module edges found"
    );
    problems
}

#[test]
fn no_backend_crate_has_a_module_cycle() {
    let problems = cycles_under("..", 9);
    assert!(
        problems.is_empty(),
        "module cycles:\n{}",
        problems.join("\n")
    );
}

/// The same check over the filter crates (`filters/*`: the pure core, the
/// proxy-wasm host glue and the three cdylibs).
#[test]
fn no_filter_crate_has_a_module_cycle() {
    let problems = cycles_under("../../filters", 5);
    assert!(
        problems.is_empty(),
        "module cycles:\n{}",
        problems.join("\n")
    );
}

fn files(list: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
    list.iter()
        .map(|(f, t)| (PathBuf::from(f), (*t).to_owned()))
        .collect()
}

#[test]
fn a_cycle_through_crate_and_super_paths_is_found() {
    let edges = graph(&files(&[
        ("lib.rs", "mod a; mod b; mod c;\npub use crate::a::X;"),
        ("a.rs", "use crate::b::Y;"),
        ("b.rs", "use super::c::Z; // crate::a in a comment"),
        ("c.rs", "use crate::{a::X, f};"),
    ]));
    let found: Vec<String> = cycles(&edges).iter().map(|c| show(c)).collect();
    assert_eq!(found, ["a → b → c → a"]);
    let grouped = graph(&files(&[
        ("lib.rs", "mod a; mod b;"),
        ("a.rs", "use crate::{b::Y, f};"),
        ("b.rs", "fn g() -> crate::a::X { todo!() }"),
    ]));
    let found: Vec<String> = cycles(&grouped).iter().map(|c| show(c)).collect();
    assert_eq!(found, ["a → b → a"]);
}

#[test]
fn parents_tests_and_comments_make_no_cycle() {
    let edges = graph(&files(&[
        ("lib.rs", "mod store; mod keys;\n"),
        ("store/mod.rs", "mod clients;\nuse crate::keys::K;"),
        (
            "store/clients.rs",
            "use super::Pool; use crate::store::Row;",
        ),
        (
            "keys.rs",
            "/// see [`crate::store`]\nfn k() {}\n#[cfg(test)]\nmod tests { use crate::store::x; }",
        ),
    ]));
    assert!(cycles(&edges).is_empty(), "{edges:?}");
    let store: Module = vec!["store".into()];
    assert!(edges[&store].contains(&vec!["keys".to_owned()]));
}
