//! Compiling a policy set and placing each validation error at its file and line.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use cedar_policy::{Policy, PolicySet, ValidationMode, Validator};
use miette::Diagnostic;

/// The 1-based line of a byte offset.
pub(super) fn line_at(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |before| before.lines().count().max(1))
}

/// A parse or schema error's first source label, as a line number.
pub(super) fn error_line(text: &str, error: &dyn Diagnostic) -> Option<usize> {
    let label = error.labels()?.next()?;
    Some(line_at(text, label.offset() + 1))
}

/// Where policies come from: `file:line` of each policy's `@id`, and each file's text (to place
/// validation errors on their own line).
#[derive(Default)]
pub(super) struct Sources {
    pub(super) locations: HashMap<String, String>,
    /// Policy id → (file, its text).
    pub(super) texts: HashMap<String, (String, Arc<str>)>,
}

/// Compiles and strictly validates one policy set; each error goes to `errors` once, at the
/// file and line it is about.
pub(super) struct Compiler<'a> {
    pub(super) validator: Validator,
    pub(super) sources: &'a Sources,
    pub(super) dir: &'a Path,
    pub(super) errors: &'a mut Vec<String>,
}

impl Compiler<'_> {
    pub(super) fn compile(&mut self, policies: Vec<Policy>, what: &str) -> Option<Arc<PolicySet>> {
        let set = match PolicySet::from_policies(policies) {
            Ok(set) => set,
            Err(e) => {
                self.errors
                    .push(format!("{}: {what}: {e}", self.dir.display()));
                return None;
            }
        };
        let result = self.validator.validate(&set, ValidationMode::Strict);
        for error in result.validation_errors() {
            let id = error.policy_id().to_string();
            // The error's own line when its span is known, else the policy's.
            let at = match self.sources.texts.get(&id) {
                Some((file, text)) => match error_line(text, error) {
                    Some(line) => format!("{file}:{line}"),
                    None => self
                        .sources
                        .locations
                        .get(&id)
                        .cloned()
                        .unwrap_or_else(|| file.clone()),
                },
                None => self.dir.display().to_string(),
            };
            let message = format!("{at}: policy {id:?}: {error}");
            // A global policy's error shows in every tenant's set; report it once.
            if !self.errors.contains(&message) {
                self.errors.push(message);
            }
        }
        Some(Arc::new(set))
    }
}
