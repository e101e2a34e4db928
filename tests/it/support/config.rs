//! The configuration a test Tollgate runs with, built as one document section by section rather
//! than glued YAML text: a value set at a dotted path replaces what was there, a mapping merged
//! in is merged key by key, so two helpers adding to one section cannot write a duplicate key or
//! break the indentation.

use std::path::Path;

use serde_json::{Map, Value, json};

/// A Tollgate configuration document.
#[derive(Clone, Debug)]
pub struct Document(Value);

impl Document {
    /// What every test Tollgate has: listeners on port 0 (the process reports what it bound),
    /// the admin token, the upstream and debug logging.
    pub fn base(upstream_url: &str, admin_token: &str) -> Document {
        Document(json!({
            "server": { "listen": "127.0.0.1:0", "limits": {} },
            "admin": { "listen": "127.0.0.1:0", "token": admin_token },
            "upstream": { "url": upstream_url },
            "forwarding": {},
            "log": { "level": "debug" },
        }))
    }

    /// Sets the value at a dotted path (`limits.backend`, `authorizer.0.listen`), creating the
    /// mappings on the way.
    pub fn set(&mut self, path: &str, value: impl Into<Value>) {
        *self.slot(path) = value.into();
    }

    /// Merges a value into the one at a dotted path (`""` for the whole document): mappings key
    /// by key, anything else replaced.
    pub fn merge(&mut self, path: &str, value: Value) {
        merge(self.slot(path), value);
    }

    /// Merges a YAML block (flat `key: value` lines, flow style for anything nested) at a path.
    pub fn merge_lines(&mut self, path: &str, lines: &str) {
        let text: String = lines
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| format!("{l}\n"))
            .collect();
        self.merge_yaml(path, &text);
    }

    /// Merges a YAML document at a path.
    pub fn merge_yaml(&mut self, path: &str, text: &str) {
        if text.trim().is_empty() {
            return;
        }
        let value: Value = serde_yaml::from_str(text)
            .unwrap_or_else(|e| panic!("test configuration is not YAML ({e}):\n{text}"));
        if !value.is_null() {
            self.merge(path, value);
        }
    }

    /// The value at a dotted path, if there is one.
    pub fn get(&self, path: &str) -> Option<&Value> {
        steps(path).try_fold(&self.0, |value, step| match step {
            Step::Key(key) => value.get(key),
            Step::Index(i) => value.get(i),
        })
    }

    pub fn write(&self, path: &Path) {
        std::fs::write(path, serde_yaml::to_string(&self.0).unwrap()).unwrap();
    }

    pub fn read(path: &Path) -> Document {
        let text = std::fs::read_to_string(path).unwrap();
        Document(serde_yaml::from_str(&text).unwrap())
    }

    fn slot(&mut self, path: &str) -> &mut Value {
        steps(path).fold(&mut self.0, |value, step| match step {
            Step::Key(key) => {
                if !value.is_object() {
                    *value = Value::Object(Map::new());
                }
                value
                    .as_object_mut()
                    .unwrap()
                    .entry(key)
                    .or_insert(Value::Null)
            }
            Step::Index(i) => {
                if !value.is_array() {
                    *value = Value::Array(Vec::new());
                }
                let items = value.as_array_mut().unwrap();
                if items.len() <= i {
                    items.resize(i + 1, Value::Null);
                }
                &mut items[i]
            }
        })
    }
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn steps(path: &str) -> impl Iterator<Item = Step<'_>> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .map(|s| match s.parse() {
            Ok(i) => Step::Index(i),
            Err(_) => Step::Key(s),
        })
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                merge(into.entry(key).or_insert(Value::Null), value);
            }
        }
        (into, from) => *into = from,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_added_twice_is_merged_not_duplicated() {
        let mut doc = Document::base("http://127.0.0.1:1", "t");
        doc.merge_yaml("", "limits:\n  backend: memory\n");
        doc.merge_yaml("", "limits:\n  legacy_headers: true\n");
        doc.set("authorizer.1.gateway", "envoy");
        assert_eq!(doc.get("limits.backend"), Some(&json!("memory")));
        assert_eq!(doc.get("limits.legacy_headers"), Some(&json!(true)));
        assert_eq!(doc.get("authorizer.0"), Some(&Value::Null));
        assert_eq!(doc.get("authorizer.1.gateway"), Some(&json!("envoy")));
        assert_eq!(doc.get("server.listen"), Some(&json!("127.0.0.1:0")));
    }
}
