//! The layout holds: inside each crate, the top-level modules (the areas, the kit or
//! kernel, the roles of the binary) import each other without a cycle, so each can be read
//! and changed from its own folder outward. Run alone with `cargo test --test it layout`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each crate's source folder, from the workspace root.
const CRATES: [&str; 4] = ["domain/src", "projections/src", "schema/src", "src"];

/// A top-level module's references to the others: target → one place that names it.
type Edges = BTreeMap<String, BTreeMap<String, String>>;

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

/// The top-level module a file belongs to (`resources` for `resources/pool.rs`), or `None`
/// for the crate root.
fn unit(root: &Path, file: &Path) -> Option<String> {
    let first = file.strip_prefix(root).unwrap().components().next()?;
    let name = first.as_os_str().to_str()?.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The names a line imports from the crate root: `crate::a::…` and `crate::{a, b::…}`.
fn crate_names(line: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            names.extend(group.split(',').filter_map(|part| {
                let name = part.trim().split("::").next()?.trim();
                (!name.is_empty()).then(|| name.to_owned())
            }));
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            names.push(rest[..end].to_owned());
        }
    }
    names
}

fn edges(root: &Path) -> Edges {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let units: BTreeSet<String> = files.iter().filter_map(|f| unit(root, f)).collect();
    let mut edges = Edges::new();
    for file in &files {
        let Some(from) = unit(root, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        // A module's own unit tests may reach anywhere; what ships may not.
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        for (n, line) in code.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for to in crate_names(line) {
                if to != from && units.contains(&to) {
                    let place = format!("{}:{}", file.strip_prefix(root).unwrap().display(), n + 1);
                    edges
                        .entry(from.clone())
                        .or_default()
                        .entry(to)
                        .or_insert(place);
                }
            }
        }
    }
    edges
}

/// A cycle through `start`, as the modules on it, if there is one.
fn cycle_through(edges: &Edges, start: &str) -> Option<Vec<String>> {
    let mut path = vec![start.to_owned()];
    let mut seen = BTreeSet::new();
    fn walk(
        edges: &Edges,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let here = path.last().unwrap().clone();
        for next in edges.get(&here).into_iter().flat_map(|t| t.keys()) {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(edges, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    walk(edges, start, &mut path, &mut seen).then_some(path)
}

#[test]
fn no_crate_has_a_cycle_between_its_top_level_modules() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cycles = Vec::new();
    for krate in CRATES {
        let root = workspace.join(krate);
        let edges = edges(&root);
        if let Some(cycle) = edges.keys().find_map(|m| cycle_through(&edges, m)) {
            let steps: Vec<String> = cycle
                .iter()
                .zip(cycle.iter().cycle().skip(1))
                .map(|(a, b)| format!("{a} -> {b} ({})", edges[a][b]))
                .collect();
            cycles.push(format!("{krate}: {}", steps.join(", ")));
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_check_sees_an_import_and_a_cycle() {
    assert_eq!(
        crate_names("use crate::{kit, requests::types::Request};"),
        ["kit", "requests"]
    );
    assert_eq!(
        crate_names("let a = crate::resources::x(crate::kit::y);"),
        ["resources", "kit"]
    );
    let mut edges = Edges::new();
    edges
        .entry("a".into())
        .or_default()
        .insert("b".into(), "x".into());
    assert_eq!(cycle_through(&edges, "a"), None);
    edges
        .entry("b".into())
        .or_default()
        .insert("a".into(), "y".into());
    assert_eq!(
        cycle_through(&edges, "a"),
        Some(vec!["a".into(), "b".into()])
    );
}
