//! Cedar policies: `schema.cedarschema`, global `*.cedar`, and `tenants/<id>/*.cedar`. Each tenant
//! is evaluated against its own compiled set (global + its own), so evaluation cost does not grow
//! with the number of tenants; tenants without files share the global set. Every policy needs a
//! stable `@id("…")`, used in decisions, audit and explanations with its `file:line`. Every set
//! is validated against the schema in strict mode.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{Policy, PolicyId, PolicySet, Schema, ValidationMode, Validator};
use miette::Diagnostic;

pub struct PolicyStore {
    pub schema: Schema,
    global: Arc<PolicySet>,
    per_tenant: HashMap<String, Arc<PolicySet>>,
    /// Policy id → `file:line`.
    locations: HashMap<String, String>,
}

/// The 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |before| before.lines().count().max(1))
}

/// A parse or schema error's first source label, as a line number.
fn error_line(text: &str, error: &dyn Diagnostic) -> Option<usize> {
    let label = error.labels()?.next()?;
    Some(line_at(text, label.offset() + 1))
}

/// The `.cedar` files directly in `dir`, sorted.
pub fn cedar_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: cannot read directory: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cedar") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Where policies come from: `file:line` of each policy's `@id`, and each file's text (to place
/// validation errors on their own line).
#[derive(Default)]
struct Sources {
    locations: HashMap<String, String>,
    /// Policy id → (file, its text).
    texts: HashMap<String, (String, Arc<str>)>,
}

/// Parses one file into policies renamed to their `@id`, recording each one's location.
fn load_file(path: &Path, sources: &mut Sources, errors: &mut Vec<String>) -> Vec<Policy> {
    let file = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            errors.push(format!("{file}: cannot read: {e}"));
            return Vec::new();
        }
    };
    let set = match PolicySet::from_str(&text) {
        Ok(set) => set,
        Err(e) => {
            let line = error_line(&text, &e)
                .map(|l| format!(":{l}"))
                .unwrap_or_default();
            errors.push(format!("{file}{line}: {e}"));
            return Vec::new();
        }
    };
    if set.templates().next().is_some() {
        errors.push(format!(
            "{file}: policy templates are not supported; write static policies"
        ));
    }
    let shared: Arc<str> = Arc::from(text.as_str());
    let mut policies = Vec::new();
    for policy in set.policies() {
        let Some(id) = policy.annotation("id") else {
            errors.push(format!(
                "{file}: a policy has no @id(\"...\") annotation; every policy needs a stable id:\n{policy}"
            ));
            continue;
        };
        let needle = format!("@id(\"{id}\")");
        let line = text
            .find(&needle)
            .map_or(1, |offset| line_at(&text, offset + 1));
        let location = format!("{file}:{line}");
        if let Some(previous) = sources.locations.insert(id.to_string(), location.clone()) {
            errors.push(format!(
                "{location}: policy id {id:?} is already used at {previous}"
            ));
        }
        sources
            .texts
            .insert(id.to_string(), (file.to_string(), shared.clone()));
        policies.push(policy.new_id(PolicyId::new(id)));
    }
    policies
}

impl PolicyStore {
    pub fn load(
        dir: &Path,
        known_tenant: impl Fn(&str) -> bool,
    ) -> Result<PolicyStore, Vec<String>> {
        let mut errors = Vec::new();
        let schema_path = dir.join("schema.cedarschema");
        let schema_text = std::fs::read_to_string(&schema_path)
            .map_err(|e| vec![format!("{}: cannot read: {e}", schema_path.display())])?;
        let schema = match Schema::from_cedarschema_str(&schema_text) {
            Ok((schema, _warnings)) => schema,
            Err(e) => {
                let line = error_line(&schema_text, &e)
                    .map(|l| format!(":{l}"))
                    .unwrap_or_default();
                return Err(vec![format!("{}{line}: {e}", schema_path.display())]);
            }
        };

        let mut sources = Sources::default();
        let mut global = Vec::new();
        for file in cedar_files(dir).map_err(|e| vec![e])? {
            global.extend(load_file(&file, &mut sources, &mut errors));
        }
        let mut tenant_policies: Vec<(String, Vec<Policy>)> = Vec::new();
        let tenants_dir = dir.join("tenants");
        if tenants_dir.is_dir() {
            let mut dirs: Vec<PathBuf> = std::fs::read_dir(&tenants_dir)
                .map_err(|e| vec![format!("{}: {e}", tenants_dir.display())])?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            dirs.sort();
            for tenant_dir in dirs {
                let tenant = tenant_dir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string();
                if !known_tenant(&tenant) {
                    errors.push(format!(
                        "{}: no tenant {tenant:?} exists",
                        tenant_dir.display()
                    ));
                    continue;
                }
                // Tenant policy ids share the namespace of the global ones: an id names one policy.
                let mut own = Vec::new();
                for file in cedar_files(&tenant_dir).map_err(|e| vec![e])? {
                    own.extend(load_file(&file, &mut sources, &mut errors));
                }
                tenant_policies.push((tenant, own));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }

        let validator = Validator::new(schema.clone());
        let mut compile = |policies: Vec<Policy>, what: &str| -> Option<Arc<PolicySet>> {
            let set = match PolicySet::from_policies(policies) {
                Ok(set) => set,
                Err(e) => {
                    errors.push(format!("{}: {what}: {e}", dir.display()));
                    return None;
                }
            };
            let result = validator.validate(&set, ValidationMode::Strict);
            for error in result.validation_errors() {
                let id = error.policy_id().to_string();
                // The error's own line when its span is known, else the policy's.
                let at = match sources.texts.get(&id) {
                    Some((file, text)) => match error_line(text, error) {
                        Some(line) => format!("{file}:{line}"),
                        None => sources.locations[&id].clone(),
                    },
                    None => dir.display().to_string(),
                };
                let message = format!("{at}: policy {id:?}: {error}");
                // A global policy's error shows in every tenant's set; report it once.
                if !errors.contains(&message) {
                    errors.push(message);
                }
            }
            Some(Arc::new(set))
        };
        let global_set = compile(global.clone(), "global policies");
        let mut per_tenant = HashMap::new();
        for (tenant, own) in tenant_policies {
            let mut all = global.clone();
            all.extend(own);
            if let Some(set) = compile(all, &format!("policies of tenant {tenant}")) {
                per_tenant.insert(tenant, set);
            }
        }
        match global_set {
            Some(global) if errors.is_empty() => Ok(PolicyStore {
                schema,
                global,
                per_tenant,
                locations: sources.locations,
            }),
            _ => Err(errors),
        }
    }

    /// The compiled set a tenant's requests are evaluated against, and its name: the tenant's
    /// id for a tenant with policies of its own, else "" (the global set).
    pub fn set_for<'a>(&'a self, tenant: &'a str) -> (&'a str, &'a PolicySet) {
        match self.per_tenant.get(tenant) {
            Some(own) => (tenant, own),
            None => ("", &self.global),
        }
    }

    /// `file:line` of a policy.
    pub fn location(&self, id: &str) -> Option<&str> {
        self.locations.get(id).map(String::as_str)
    }
}
