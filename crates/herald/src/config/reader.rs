//! Typed reads from the merged JSON options, with errors that name the key, the value and
//! what was expected.

use serde_json::Value;
use std::fmt;

/// A config value Herald cannot use. Start-up stops and prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the key, e.g. `socketio.pingInterval`.
    pub key: String,
    /// The offending value as JSON.
    pub value: String,
    /// What would have been accepted.
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "config key `{}` has value {}: expected {}",
            self.key, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

/// Reads typed values out of a JSON tree, remembering the first errors it meets.
pub(super) struct Reader<'a> {
    root: &'a Value,
    errors: Vec<ConfigError>,
}

impl<'a> Reader<'a> {
    /// A reader over the merged options.
    pub(super) fn new(root: &'a Value) -> Self {
        Self {
            root,
            errors: Vec::new(),
        }
    }

    /// The value at a dotted path, if present and not null.
    pub(super) fn get(&self, path: &str) -> Option<&'a Value> {
        let mut node = self.root;
        for part in path.split('.') {
            node = node.get(part)?;
        }
        (!node.is_null()).then_some(node)
    }

    /// Records an error for `path`.
    pub(super) fn fail(&mut self, path: &str, value: &Value, expected: &str) {
        self.errors.push(ConfigError {
            key: path.to_owned(),
            value: truncate_json(value),
            expected: expected.to_owned(),
        });
    }

    /// A string; numbers are accepted and turned into their decimal text.
    pub(super) fn string(&mut self, path: &str, default: &str) -> String {
        self.opt_string(path).unwrap_or_else(|| default.to_owned())
    }

    /// A string if the key is set (null and absent both give `None`).
    pub(super) fn opt_string(&mut self, path: &str) -> Option<String> {
        match self.get(path)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            other => {
                self.fail(path, other, "a string");
                None
            }
        }
    }

    /// A boolean; the strings `"true"` and `"false"` are accepted (env overrides are strings).
    pub(super) fn bool(&mut self, path: &str, default: bool) -> bool {
        match self.get(path) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s == "true" => true,
            Some(Value::String(s)) if s == "false" || s.is_empty() => false,
            Some(other) => {
                self.fail(path, other, "true or false");
                default
            }
        }
    }

    /// A non-negative integer, as a JSON number or a string of digits.
    pub(super) fn u64(&mut self, path: &str, default: u64, expected: &str) -> u64 {
        match self.get(path) {
            None => default,
            Some(Value::Number(n)) => match n.as_u64().or_else(|| float_as_u64(n.as_f64())) {
                Some(v) => v,
                None => {
                    self.fail(path, &Value::Number(n.clone()), expected);
                    default
                }
            },
            Some(Value::String(s)) => match s.trim().parse::<u64>() {
                Ok(v) => v,
                Err(_) => {
                    self.fail(path, &Value::String(s.clone()), expected);
                    default
                }
            },
            Some(other) => {
                self.fail(path, other, expected);
                default
            }
        }
    }

    /// One of a fixed set of strings.
    pub(super) fn one_of(&mut self, path: &str, allowed: &[&str], default: &str) -> String {
        let value = self.string(path, default);
        if allowed.contains(&value.as_str()) {
            value
        } else {
            let expected = format!("one of {}", quoted_list(allowed));
            self.fail(path, &Value::String(value), &expected);
            default.to_owned()
        }
    }

    /// Everything that went wrong, in the order met.
    pub(super) fn into_errors(self) -> Vec<ConfigError> {
        self.errors
    }
}

/// `1e8` in JSON is a float; accept whole floats as integers.
fn float_as_u64(f: Option<f64>) -> Option<u64> {
    let f = f?;
    (f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64).then_some(f as u64)
}

/// `"a", "b" or "c"`.
pub(super) fn quoted_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {}", rest.join(", "), last),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

/// The value as compact JSON, cut to a length that fits on one line.
fn truncate_json(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 80 {
        let cut: String = text.chars().take(77).collect();
        format!("{cut}...")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_key_value_and_expectation() {
        let root = json!({"socketio": {"pingInterval": "soon"}});
        let mut reader = Reader::new(&root);
        assert_eq!(
            reader.u64("socketio.pingInterval", 25000, "milliseconds"),
            25000
        );
        let errors = reader.into_errors();
        assert_eq!(
            errors[0].to_string(),
            "config key `socketio.pingInterval` has value \"soon\": expected milliseconds"
        );
    }

    #[test]
    fn whole_floats_and_digit_strings_are_integers() {
        let root = json!({"a": 1e8, "b": "42", "c": 1.5});
        let mut reader = Reader::new(&root);
        assert_eq!(reader.u64("a", 0, "n"), 100_000_000);
        assert_eq!(reader.u64("b", 0, "n"), 42);
        assert_eq!(reader.u64("c", 7, "n"), 7);
        assert_eq!(reader.into_errors().len(), 1);
    }

    #[test]
    fn booleans_accept_env_strings() {
        let root = json!({"a": "true", "b": "false", "c": "yes"});
        let mut reader = Reader::new(&root);
        assert!(reader.bool("a", false));
        assert!(!reader.bool("b", true));
        assert!(reader.bool("c", true));
        assert_eq!(reader.into_errors()[0].key, "c");
    }
}
