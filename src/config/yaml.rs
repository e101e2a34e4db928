//! The one place that parses YAML. serde_yaml is deprecated upstream; a fork can replace it here
//! without touching the rest of the code.

use serde::de::DeserializeOwned;

/// Parses `text` into `T`, reporting the key path (`upstream.connect_timeout`) and the line of the
/// first error.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let location = inner
            .location()
            .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
            .unwrap_or_default();
        if path == "." || path.is_empty() {
            format!("{inner}{location}")
        } else {
            format!("{path}: {inner}{location}")
        }
    })
}
