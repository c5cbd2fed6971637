//! Turns the vendored crawler list (`data/crawler-user-agents.json`, kept
//! exactly as npm ships it) into the compact pattern list the library embeds
//! with `include_str!`: one `<kind>\t<pattern>` line per entry, `p` for
//! entries tagged `social-preview`, `b` for the rest. The JSON itself (half a
//! megabyte, mostly example user agents) stays out of the wasm.

use std::{env, fs, path::PathBuf};

fn main() {
    let source = "data/crawler-user-agents.json";
    println!("cargo:rerun-if-changed={source}");
    let text = fs::read_to_string(source).unwrap_or_else(|e| panic!("read {source}: {e}"));
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {source}: {e}"));
    let mut out = String::with_capacity(entries.len() * 24);
    for (i, entry) in entries.iter().enumerate() {
        let pattern = entry["pattern"]
            .as_str()
            .unwrap_or_else(|| panic!("{source}: entry {i} has no string `pattern`"));
        assert!(
            !pattern.contains(['\n', '\r', '\t']),
            "{source}: pattern {pattern:?} contains a line break or tab"
        );
        let preview = entry["tags"]
            .as_array()
            .is_some_and(|tags| tags.iter().any(|t| t == "social-preview"));
        out.push(if preview { 'p' } else { 'b' });
        out.push('\t');
        out.push_str(pattern);
        out.push('\n');
    }
    let dest = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"))
        .join("crawler-user-agents.patterns");
    fs::write(&dest, out).unwrap_or_else(|e| panic!("write {}: {e}", dest.display()));
}
