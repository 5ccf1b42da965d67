//! Goal: the broker's modules depend one way, as ARCHITECTURE.md draws them: from the leaves
//! (topology, counters, formats) through the domain (groups, the bus's ops, partitions) to the
//! shard, the front-ends (handler, then the Kafka protocol's, which calls the handler's
//! operations; connection) and the server. A module may use only modules
//! ranked below it, so no two modules use each other.
//!
//! Method: read every file under broker/src, take the `crate::...` and `super::...` paths in
//! its code (comments and doc comments left out), and check each against the rank table below.
//! Test code is left out (everything from a file's first `#[cfg(test)]`, and the files of
//! test-only submodules): tests may use anything. A new module must be given a rank here: the
//! test fails on any file it cannot place.

use std::path::{Path, PathBuf};

/// Modules from the bottom up; a module may use only modules earlier in the list (and itself
/// and its own submodules). The longest matching prefix places a file or a path.
const RANKS: &[&str] = &[
    "topology",
    "byte_reader",
    "per_ip",
    "snapshot",
    "metrics",
    "metadata",
    "producer_state",
    "producer_ids",
    "error",
    "group::assign",
    "group::offsets",
    "group::retention",
    "group::membership",
    "group::error",
    "ops",
    "partition",
    "group::coordinator",
    "group",
    "shard",
    "handler::errors",
    "handler::group",
    "handler",
    "kafka::config",
    "kafka::errors",
    "kafka::frame",
    "kafka::admin",
    "kafka::produce",
    "kafka::fetch",
    "kafka::group",
    "kafka",
    "kafka::connection",
    "connection",
    "server",
];

fn rank(module: &str) -> Option<usize> {
    RANKS
        .iter()
        .enumerate()
        .filter(|(_, name)| module == **name || module.starts_with(&format!("{name}::")))
        .max_by_key(|(_, name)| name.len())
        .map(|(index, _)| index)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read broker/src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `group/coordinator.rs` -> `group::coordinator`; `handler/mod.rs` -> `handler`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file
        .strip_prefix(src)
        .expect("under src")
        .with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|last| last == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The module paths a line of code names: `crate::a::b` and, resolved against `module`,
/// `super::a`.
fn paths_named(line: &str, module: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut found = Vec::new();
    let code = code.replace(
        "super::super::",
        &format!("crate::{}::", parent(&parent(module))),
    );
    let code = code.replace("crate::::", "crate::");
    let code = code.as_str();
    for (prefix, base) in [("crate::", String::new()), ("super::", parent(module))] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let after = &rest[at + prefix.len()..];
            let path: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let path = path.trim_end_matches(':');
            let full = if base.is_empty() {
                path.to_string()
            } else {
                format!("{base}::{path}")
            };
            found.push(full);
            rest = &after[path.len()..];
        }
    }
    found
}

/// A file declared only under `#[cfg(test)]` by its parent (`mod tests;`, `mod simulation;`).
fn is_test_only(src: &Path, file: &Path) -> bool {
    let Some(stem) = file.file_stem().and_then(|s| s.to_str()) else {
        return false;
    };
    let Some(dir) = file.parent() else {
        return false;
    };
    // The parent is `<dir>.rs` or `<dir>/mod.rs`.
    let parent = [dir.with_extension("rs"), dir.join("mod.rs")]
        .into_iter()
        .find(|p| p.exists() && p.starts_with(src) && p != file);
    let Some(parent) = parent else {
        return false;
    };
    let text = std::fs::read_to_string(parent).expect("read the parent");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    lines
        .windows(2)
        .any(|pair| pair[0] == "#[cfg(test)]" && pair[1] == format!("mod {stem};"))
}

/// The parent module a file's `super::` names (a `mod.rs` file is its directory's module).
fn parent(module: &str) -> String {
    module
        .rsplit_once("::")
        .map(|(p, _)| p.to_string())
        .unwrap_or_default()
}

#[test]
fn modules_depend_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" {
            continue;
        }
        let Some(own) = rank(&module) else {
            violations.push(format!("{module}: not placed in RANKS"));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read");
        if is_test_only(&src, file) {
            continue;
        }
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            for path in paths_named(line, &module) {
                // Items of a module (`crate::shard::Shard`) place by their module's prefix.
                let Some(used) = rank(&path) else {
                    continue;
                };
                let same_family = path.starts_with(&module) || module.starts_with(&path);
                if used > own || (used == own && !same_family) {
                    violations.push(format!(
                        "{}:{}: {module} uses {path}",
                        file.display(),
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "modules used against the direction:\n{}",
        violations.join("\n")
    );
}
