//! Configuration: read the file, interpolate `${ENV}`, parse into [`raw`] structs, then validate
//! into the typed [`Config`] that the rest of Tollgate uses. Every error names the file, the key
//! path and the bad value.

mod env;
pub mod lines;
mod model;
pub mod raw;
mod raw_authorizer;
pub(crate) mod units;
mod validate;
pub(crate) mod yaml;

use std::fmt;
use std::path::Path;

pub use model::*;

/// Everything wrong with one configuration file.
#[derive(Debug)]
pub struct ConfigError {
    pub source: String,
    pub errors: Vec<String>,
    /// What could be read despite the errors (the main file parsed, some values did not
    /// validate): enough for `check` to go on to the files it names, never to serve.
    pub partial: Option<Box<Config>>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", lines::placed(&format!("{}: {error}", self.source)))?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Loads and validates a configuration file. Relative paths inside it (certificates, CA
    /// files) are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with(path, |name| std::env::var(name).ok())
    }

    /// [`Config::load`] with `${VAR}` references answered by `lookup` (the demo gives its own
    /// state directory this way).
    pub fn load_with(
        path: &Path,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source: source.clone(),
            errors: vec![format!("cannot read file: {e}")],
            partial: None,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_text_with(&text, &source, base, lookup)
    }

    /// Validates configuration text; `lookup` answers its `${VAR}` references.
    fn from_text_with(
        text: &str,
        source: &str,
        base: &Path,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let fail = |errors: Vec<String>| ConfigError {
            source: source.to_string(),
            errors,
            partial: None,
        };
        let text = env::interpolate(text, lookup)
            .map_err(|(line, msg)| fail(vec![format!("line {line}: {msg}")]))?;
        let raw: raw::RawConfig = yaml::parse(&text).map_err(|msg| fail(vec![msg]))?;
        match validate::validate(raw, source, base) {
            (config, errors) if errors.is_empty() => Ok(config),
            (config, errors) => Err(ConfigError {
                partial: Some(Box::new(config)),
                ..fail(lines::with_lines(&text, errors))
            }),
        }
    }
}
