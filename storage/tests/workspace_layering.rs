//! Goal: the workspace keeps one direction of dependency (ARCHITECTURE.md):
//! `schema` <- `storage`, `net` <- `broker`; clients and `loadgen` use `net` + `schema` only;
//! `cli` hosts the one `ringbus` binary on top of all of them (its commands run the broker, the
//! clients and the load generator), and nothing depends on it. `broker` never uses `client` or
//! `loadgen`.
//! Only `storage` and `net` may reach the runtime (glommio) for files and sockets, and only
//! `schema` is free of I/O entirely.
//!
//! Method: read every member's Cargo.toml from the workspace root and compare its internal and
//! runtime dependencies with the allowed set. A crate that is not listed here fails the test,
//! so adding a crate means deciding its place in the layering.

use std::collections::BTreeSet;
use std::path::Path;

/// (crate, internal crates it may depend on, may it depend on glommio, on socket2)
const LAYERS: &[(&str, &[&str], bool, bool)] = &[
    ("schema", &[], false, false),
    ("storage", &["schema"], true, false),
    ("net", &["schema"], true, true),
    ("client", &["schema", "net"], true, false),
    ("broker", &["schema", "storage", "net"], true, true),
    ("loadgen", &["schema", "net", "client"], true, false),
    (
        "cli",
        &["schema", "storage", "net", "client", "broker", "loadgen"],
        true,
        false,
    ),
];

const INTERNAL: &[&str] = &[
    "schema", "storage", "net", "client", "broker", "loadgen", "cli",
];

/// Names of the dependencies declared in the `[dependencies]` table of a manifest.
fn dependencies(manifest: &str) -> BTreeSet<String> {
    let mut in_dependencies = false;
    let mut names = BTreeSet::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if in_dependencies && let Some((name, _)) = line.split_once('=') {
            let name = name.trim().trim_end_matches(".workspace").to_string();
            if !name.is_empty() && !name.starts_with('#') {
                names.insert(name);
            }
        }
    }
    names
}

fn members(root: &str) -> Vec<String> {
    let start = root.find("members").expect("workspace members");
    let list = &root[start..root[start..].find(']').expect("end of members") + start];
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn crates_depend_only_downward() {
    let root_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = std::fs::read_to_string(root_dir.join("Cargo.toml")).expect("root manifest");
    let members = members(&root);
    assert!(
        members.contains(&"storage".to_string()),
        "members parsed: {members:?}"
    );
    for member in members {
        let (_, allowed, glommio, socket2) = LAYERS
            .iter()
            .find(|(name, ..)| *name == member)
            .unwrap_or_else(|| panic!("crate {member} has no place in the layering table"));
        let manifest =
            std::fs::read_to_string(root_dir.join(&member).join("Cargo.toml")).expect("manifest");
        let deps = dependencies(&manifest);
        for dep in &deps {
            if INTERNAL.contains(&dep.as_str()) {
                assert!(
                    allowed.contains(&dep.as_str()),
                    "{member} must not depend on {dep} (allowed: {allowed:?})"
                );
            }
        }
        assert!(
            *glommio || !deps.contains("glommio"),
            "{member} must not depend on glommio"
        );
        assert!(
            *socket2 || !deps.contains("socket2"),
            "{member} must not touch sockets"
        );
    }
}

#[test]
fn the_manifest_parser_sees_dependencies() {
    let deps = dependencies(
        "[package]\nname = \"x\"\n[dependencies]\nschema.workspace = true\nbytes = \"1\"\n[dev-dependencies]\nbroker = { path = \"b\" }\n",
    );
    assert_eq!(
        deps,
        BTreeSet::from(["schema".to_string(), "bytes".to_string()])
    );
}
