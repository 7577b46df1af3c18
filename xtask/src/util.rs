//! Small helpers shared by the tasks: YAML/JSON documents as
//! `serde_json::Value`, Python-like views of a value (missing is empty),
//! and finding the external tools the tasks drive.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::LazyLock;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The repository root: the parent of this crate's directory.
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// Every non-empty YAML document of `text`, as JSON values.
pub fn yaml_docs_str(text: &str, what: &str) -> Result<Vec<Value>> {
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).with_context(|| format!("{what}: invalid YAML"))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Every non-empty YAML document of a file.
pub fn yaml_docs(path: &Path) -> Result<Vec<Value>> {
    let text = read(path)?;
    yaml_docs_str(&text, &path.display().to_string())
}

/// The one YAML document of a file (null when empty).
pub fn yaml_file(path: &Path) -> Result<Value> {
    Ok(yaml_docs(path)?.into_iter().next().unwrap_or(Value::Null))
}

pub fn json_file(path: &Path) -> Result<Value> {
    serde_json::from_str(&read(path)?).with_context(|| format!("{}: invalid JSON", path.display()))
}

/// Writes `text` to `path`, created owner-only (0600) when it does not
/// exist yet, truncated when it does: for files that carry secrets.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(text.as_bytes())
}

pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// A value serialised with its object keys sorted (Python's
/// `json.dumps(..., sort_keys=True)`), whatever order the map keeps.
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Every object inside a value, the value itself first (depth first).
pub fn walk(v: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    fn go<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        match v {
            Value::Object(m) => {
                out.push(v);
                for x in m.values() {
                    go(x, out);
                }
            }
            Value::Array(a) => {
                for x in a {
                    go(x, out);
                }
            }
            _ => {}
        }
    }
    go(v, &mut out);
    out
}

static EMPTY_MAP: LazyLock<Map<String, Value>> = LazyLock::new(Map::new);

/// Lenient views of a JSON value, as the checks read manifests: a missing
/// or differently typed field reads as empty.
pub trait View {
    /// The string, or "" when it is not one.
    fn s(&self) -> &str;
    /// The array's items, or none.
    fn a(&self) -> &[Value];
    /// The object's map, or an empty one.
    fn o(&self) -> &Map<String, Value>;
    /// The object's keys.
    fn keys(&self) -> BTreeSet<String>;
    /// Whether the object has the key.
    fn has(&self, key: &str) -> bool;
    /// Python's `str()` of the value: strings as they are, numbers and
    /// booleans written out, null as `None`.
    fn text(&self) -> String;
    /// Python's truthiness.
    fn truthy(&self) -> bool;
    /// The value as an integer when it is one (`3`, not `"3"`).
    fn int(&self) -> Option<i64>;
}

impl View for Value {
    fn s(&self) -> &str {
        self.as_str().unwrap_or("")
    }
    fn a(&self) -> &[Value] {
        self.as_array().map(Vec::as_slice).unwrap_or(&[])
    }
    fn o(&self) -> &Map<String, Value> {
        self.as_object().unwrap_or(&EMPTY_MAP)
    }
    fn keys(&self) -> BTreeSet<String> {
        self.o().keys().cloned().collect()
    }
    fn has(&self, key: &str) -> bool {
        self.o().contains_key(key)
    }
    fn text(&self) -> String {
        match self {
            Value::String(s) => s.clone(),
            Value::Null => "None".into(),
            Value::Bool(true) => "True".into(),
            Value::Bool(false) => "False".into(),
            other => other.to_string(),
        }
    }
    fn truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(m) => !m.is_empty(),
        }
    }
    fn int(&self) -> Option<i64> {
        self.as_i64()
    }
}

/// Python's `repr` of a list of strings: `['a', 'b']`.
pub fn pylist<I, S>(items: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let parts: Vec<String> = items
        .into_iter()
        .map(|s| format!("'{}'", s.as_ref()))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// A command on PATH (`command -v`).
pub fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// A command on PATH, else the one in the repository's `.venv/bin`.
pub fn tool(root: &Path, name: &str) -> Option<PathBuf> {
    if let Some(p) = on_path(name) {
        return Some(p);
    }
    let venv = root.join(".venv/bin").join(name);
    is_executable(&venv).then_some(venv)
}

pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs a command to completion and captures its output (an error only
/// when it cannot be started).
pub fn output(cmd: &mut Command) -> Result<Output> {
    cmd.output()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))
}

/// `out` when its command succeeded; else an error of its stdout and
/// stderr followed by `why` (what the failure means).
pub fn succeeded(out: Output, why: &str) -> Result<Output> {
    if !out.status.success() {
        bail!(
            "{}{}\n{why}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// Runs a command; fails with its stderr when it exits non-zero.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = output(cmd)?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}):\n{}{}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// Cargo: the one running this tool (`$CARGO`), else `cargo` on PATH.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the root),
/// else `target/`.
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => root.join(d),
        _ => root.join("target"),
    }
}

/// The command line as a shell would show it: the variables it sets, the
/// program's name, the arguments.
pub fn shown(cmd: &Command) -> String {
    let mut parts: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_str()?, v?.to_str()?)))
        .collect();
    let program = Path::new(cmd.get_program());
    parts.push(
        program
            .file_name()
            .unwrap_or(program.as_os_str())
            .to_string_lossy()
            .into_owned(),
    );
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// One step of a task, as make runs a recipe line: prints the command,
/// runs it with this terminal, fails when it exits non-zero.
pub fn step(cmd: &mut Command) -> Result<()> {
    println!("{}", shown(cmd));
    quiet_step(cmd)
}

/// [`step`] without printing the command.
pub fn quiet_step(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{} failed ({status})", shown(cmd));
    }
    Ok(())
}

/// `KEY=VALUE` lines of an env file (comments and blank lines skipped), as
/// `set -a; . file` would export them for the simple files this project
/// ships (no quoting, no expansion).
pub fn env_file(path: &Path) -> Result<Vec<(String, String)>> {
    let text = read(path)?;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        let mut v = v.trim();
        if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
        {
            v = &v[1..v.len() - 1];
        }
        out.push((
            k.trim().trim_start_matches("export ").to_owned(),
            v.to_owned(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_keys_at_every_depth() {
        let v: Value = serde_json::from_str(r#"{"b":[{"z":1,"a":2}],"a":"x"}"#).unwrap();
        assert_eq!(canonical(&v), r#"{"a":"x","b":[{"a":2,"z":1}]}"#);
    }

    #[test]
    fn yaml_documents_skip_empty_ones() {
        let docs = yaml_docs_str("a: 1\n---\n---\nb: [x]\n", "t").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["b"][0], "x");
        assert!(yaml_docs_str("a: [", "t").is_err());
    }

    #[test]
    fn views_read_missing_fields_as_empty() {
        let v: Value = serde_json::json!({"n": 3, "t": true, "s": "x"});
        assert_eq!(v["missing"].s(), "");
        assert!(v["missing"].a().is_empty());
        assert_eq!(v["n"].text(), "3");
        assert_eq!(v["t"].text(), "True");
        assert!(!v["missing"].truthy());
        assert!(v["s"].truthy());
    }
}
