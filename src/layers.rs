//! The import rules of the module layout, checked over the source tree: each module may use
//! only the modules in layers below its own (or its named peers), so storage and access rules
//! stay at the bottom, the event dispatcher knows none of its consumers, and nothing below the
//! HTTP layer reaches up into it.

use std::{collections::BTreeSet, fs, path::Path};

/// Layers from the bottom up; a module may import modules of lower layers only.
const LAYERS: &[&[&str]] = &[
    &["error"],
    &[
        "config",
        "request_id",
        "text",
        "pagination",
        "background",
        "outbound",
        "chain",
    ],
    &["access", "vault"],
    &["store"],
    &["audit", "idempotency", "mail", "files", "plans"],
    &["events"],
    &["identity", "tenancy"],
    &["work"],
    &["notify"],
    &["conversation", "webhooks"],
    &["lifecycle", "exports", "billing"],
    &["demo", "http"],
    &["worker"],
    &["app"],
    &["doctor"],
];

/// Modules of one layer that may use each other (sign-up creates an organisation and its
/// owner's account together).
const PEERS: &[(&str, &str)] = &[("identity", "tenancy"), ("tenancy", "identity")];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` has no layer in src/layers.rs"))
}

/// The top-level modules that `source` names through `crate::` (test modules left out).
fn imports(source: &str) -> BTreeSet<String> {
    let code = source
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(tree) = rest.strip_prefix('{') {
            // `crate::{a, b::{c, d}, e}`: the names at the first level.
            let mut depth = 0;
            let mut item = String::new();
            for c in tree.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.extend(first_name(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            found.extend(first_name(&item));
        } else {
            found.extend(first_name(rest));
        }
    }
    found
}

fn first_name(path: &str) -> Option<String> {
    let name: String = path
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn modules_import_only_what_lies_below_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut broken = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&root).expect("under src");
        let top = relative.components().next().expect("a path");
        let module = top
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if ["lib", "main", "layers"].contains(&module.as_str()) {
            continue;
        }
        let own = layer_of(&module);
        let source = fs::read_to_string(&file).expect("readable source");
        for used in imports(&source) {
            let allowed = used == module
                || layer_of(&used) < own
                || PEERS.contains(&(module.as_str(), used.as_str()));
            if !allowed {
                broken.push(format!("{} uses crate::{used}", relative.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports against the layers:\n{}",
        broken.join("\n")
    );
}

#[test]
fn import_trees_are_read_at_their_first_level() {
    let found = imports(
        "use crate::{\n    access::{self, Role},\n    error::Result,\n    store::{Db, TenantTx},\n};\nlet x = crate::text::clean(y);\n#[cfg(test)]\nmod tests { use crate::http; }",
    );
    let want: BTreeSet<String> = ["access", "error", "store", "text"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(found, want);
}
