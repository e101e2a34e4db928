//! The one place that parses YAML. serde_yaml is deprecated upstream; a fork can replace it here
//! without touching the rest of the code.

use std::path::Path;

use serde::de::DeserializeOwned;

/// Reads and parses a YAML file, returning its text too (to locate later errors). Errors are
/// prefixed with the file's path.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<(String, T), Vec<String>> {
    let file = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![format!("{file}: cannot read: {e}")])?;
    let value = parse(&text).map_err(|e| vec![format!("{file}: {e}")])?;
    Ok((text, value))
}

/// Both results, or every error of either: two files loaded independently report together.
pub fn both<A, B>(
    a: Result<A, Vec<String>>,
    b: Result<B, Vec<String>>,
) -> Result<(A, B), Vec<String>> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => {
            let mut errors = a.err().unwrap_or_default();
            errors.extend(b.err().unwrap_or_default());
            Err(errors)
        }
    }
}

/// Parses `text` into `T`. An error reads `key.path: message (line N)`.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let mut message = inner.to_string();
        let mut line = None;
        if let Some(location) = inner.location() {
            let suffix = format!(" at line {} column {}", location.line(), location.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_string();
            }
            line = Some(key_line(text, location.line(), &path));
        }
        // serde_yaml prefixes the path it knows; ours is complete, so drop its copy.
        if let Some((prefix, rest)) = message.split_once(": ")
            && path.starts_with(prefix)
        {
            message = rest.to_string();
        }
        let line = line.map(|l| format!(" (line {l})")).unwrap_or_default();
        if path == "." || path.is_empty() {
            format!("{message}{line}")
        } else {
            format!("{path}: {message}{line}")
        }
    })
}

/// serde_yaml reports an error in a value at the enclosing mapping; the line that holds the key
/// itself is what an operator wants, so look for it from there on.
fn key_line(text: &str, reported: usize, path: &str) -> usize {
    let key = path.rsplit('.').next().unwrap_or(path);
    text.lines()
        .enumerate()
        .skip(reported.saturating_sub(1))
        .find(|(_, line)| {
            line.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map_or(reported, |(index, _)| index + 1)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        a: u32,
        b: u32,
    }

    #[test]
    fn errors_name_the_key_path_and_its_line() {
        let err = parse::<Outer>("inner:\n  a: 1\n  b: nope\n").unwrap_err();
        assert!(err.starts_with("inner.b: invalid type"), "{err}");
        assert!(err.ends_with("(line 3)"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse::<Outer>("inner:\n  a: 1\n  b: 2\n  c: 3\n").unwrap_err();
        assert!(err.contains("unknown field `c`"), "{err}");
    }
}
