//! Cedar policies: `schema.cedarschema`, global `*.cedar`, and `tenants/<id>/*.cedar`. Each tenant
//! is evaluated against its own compiled set (global + its own), so evaluation cost does not grow
//! with the number of tenants; tenants without files share the global set. Every policy needs a
//! stable `@id("…")`, used in decisions, audit and explanations with its `file:line`. Every set
//! is validated against the schema in strict mode. A reload reuses each set that was compiled
//! and validated from the very same texts (schema, global files, the tenant's own files), so its
//! cost follows what changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{Policy, PolicyId, PolicySet, Schema, Validator};

use super::compile::{Compiler, Sources, error_line, line_at};

/// The files a set was compiled from, path and text, in load order.
type Inputs = Vec<(PathBuf, Arc<str>)>;

/// A compiled and validated set, with what it was compiled from.
struct Compiled {
    inputs: Inputs,
    set: Arc<PolicySet>,
}

pub struct PolicyStore {
    pub schema: Schema,
    /// The schema and the global files: every set depends on them.
    global_inputs: Inputs,
    global: Arc<PolicySet>,
    per_tenant: HashMap<String, Compiled>,
    /// Policy id → `file:line`.
    locations: HashMap<String, String>,
}

/// The `.cedar` files directly in `dir`, sorted.
pub(crate) fn cedar_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: cannot read directory: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cedar") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// A parse error with what the parser expected, and the usual cause of a stray `@`.
fn parse_message(error: &cedar_policy::ParseErrors) -> String {
    let mut message = error.to_string();
    if let Some(help) = miette::Diagnostic::help(error) {
        message.push_str(&format!(" ({help})"));
    }
    if message.contains("unexpected token `@`") {
        message.push_str(": expected `;` to end the policy before this annotation");
    } else if message.contains("unexpected end of input") {
        message.push_str(": expected `;` to end the last policy");
    }
    message
}

/// Reads and parses one file, recording its text in `inputs`.
fn load_file(
    path: &Path,
    sources: &mut Sources,
    inputs: &mut Inputs,
    errors: &mut Vec<String>,
) -> Vec<Policy> {
    let text: Arc<str> = match std::fs::read_to_string(path) {
        Ok(text) => Arc::from(text.as_str()),
        Err(e) => {
            errors.push(format!("{}: cannot read: {e}", path.display()));
            return Vec::new();
        }
    };
    inputs.push((path.to_path_buf(), text.clone()));
    parse(&path.display().to_string(), &text, sources, errors)
}

/// Parses the text of one file (named `file` in locations and errors) into policies renamed to
/// their `@id`, recording each one's location and text in `sources`.
pub(super) fn parse(
    file: &str,
    text: &Arc<str>,
    sources: &mut Sources,
    errors: &mut Vec<String>,
) -> Vec<Policy> {
    let set = match PolicySet::from_str(text) {
        Ok(set) => set,
        Err(e) => {
            let line = error_line(text, &e)
                .map(|l| format!(":{l}"))
                .unwrap_or_default();
            errors.push(format!("{file}{line}: {}", parse_message(&e)));
            return Vec::new();
        }
    };
    if set.templates().next().is_some() {
        errors.push(format!(
            "{file}: policy templates are not supported; write static policies"
        ));
    }
    let mut policies = Vec::new();
    // In file order (the parser names them policy0, policy1, …), so that the n-th policy with an
    // id is placed at the n-th `@id` with it.
    let mut in_order: Vec<&Policy> = set.policies().collect();
    in_order.sort_by_key(|p| {
        p.id()
            .to_string()
            .trim_start_matches("policy")
            .parse::<usize>()
            .unwrap_or(usize::MAX)
    });
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (n, policy) in in_order.into_iter().enumerate() {
        let Some(id) = policy.annotation("id") else {
            errors.push(format!(
                "{file}: policy {} of the file has no @id(\"...\") annotation; every policy needs a stable id:\n{policy}",
                n + 1
            ));
            continue;
        };
        let needle = format!("@id(\"{id}\")");
        let nth = seen.entry(id.to_string()).or_insert(0);
        let line = text
            .match_indices(&needle)
            .nth(*nth)
            .map_or(1, |(offset, _)| line_at(text, offset + 1));
        *nth += 1;
        let location = format!("{file}:{line}");
        if let Some(previous) = sources.locations.insert(id.to_string(), location.clone()) {
            errors.push(format!(
                "{location}: policy id {id:?} is already used at {previous}"
            ));
        }
        sources
            .texts
            .insert(id.to_string(), (file.to_string(), text.clone()));
        policies.push(policy.new_id(PolicyId::new(id)));
    }
    policies
}

/// The schema, and its text (an input of every set).
fn load_schema(path: &Path) -> Result<(Schema, Arc<str>), Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
    match Schema::from_cedarschema_str(&text) {
        Ok((schema, _warnings)) => Ok((schema, Arc::from(text.as_str()))),
        Err(e) => {
            let line = error_line(&text, &e)
                .map(|l| format!(":{l}"))
                .unwrap_or_default();
            Err(vec![format!("{}{line}: {e}", path.display())])
        }
    }
}

/// A tenant's own policies, with the files they came from.
type TenantPolicies = (String, Vec<Policy>, Inputs);

/// Every `tenants/<id>/` directory: the tenant, its policies and the files they came from. A
/// directory of a tenant that does not exist is an error.
fn load_tenant_dirs(
    dir: &Path,
    known_tenant: &impl Fn(&str) -> bool,
    sources: &mut Sources,
    errors: &mut Vec<String>,
) -> Result<Vec<TenantPolicies>, Vec<String>> {
    let mut tenant_policies = Vec::new();
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
            let mut inputs = Inputs::new();
            for file in cedar_files(&tenant_dir).map_err(|e| vec![e])? {
                own.extend(load_file(&file, sources, &mut inputs, errors));
            }
            tenant_policies.push((tenant, own, inputs));
        }
    }
    Ok(tenant_policies)
}

impl PolicyStore {
    /// How many policy sets there are: the global one and one per tenant with its own files.
    pub(crate) fn sets(&self) -> usize {
        1 + self.per_tenant.len()
    }

    /// Every policy once: the global ones, then each tenant's own.
    pub(crate) fn policies(&self) -> impl Iterator<Item = &Policy> {
        let global = self.global.policies();
        let own = self.per_tenant.values().flat_map(|compiled| {
            compiled
                .set
                .policies()
                .filter(|p| self.global.policy(p.id()).is_none())
        });
        global.chain(own)
    }

    /// Loads and validates every set; a set whose inputs equal its inputs in `previous` is taken
    /// from there as it is.
    pub fn load(
        dir: &Path,
        known_tenant: impl Fn(&str) -> bool,
        previous: Option<&PolicyStore>,
    ) -> Result<PolicyStore, Vec<String>> {
        let mut errors = Vec::new();
        let schema_path = dir.join("schema.cedarschema");
        let (schema, schema_text) = load_schema(&schema_path)?;

        let mut sources = Sources::default();
        let mut global = Vec::new();
        let mut global_inputs: Inputs = vec![(schema_path, schema_text)];
        for file in cedar_files(dir).map_err(|e| vec![e])? {
            global.extend(load_file(
                &file,
                &mut sources,
                &mut global_inputs,
                &mut errors,
            ));
        }
        // Sets compiled from the same schema and global files, by tenant.
        let reusable = previous
            .filter(|p| p.global_inputs == global_inputs)
            .map(|p| &p.per_tenant);
        let tenant_policies = load_tenant_dirs(dir, &known_tenant, &mut sources, &mut errors)?;
        if !errors.is_empty() {
            return Err(errors);
        }

        let mut compiler = Compiler {
            validator: Validator::new(schema.clone()),
            sources: &sources,
            dir,
            errors: &mut errors,
        };
        let mut compile = |policies, what: &str| compiler.compile(policies, what);
        let global_set = match previous.filter(|_| reusable.is_some()) {
            Some(previous) => Some(previous.global.clone()),
            None => compile(global.clone(), "global policies"),
        };
        let mut per_tenant = HashMap::new();
        for (tenant, own, inputs) in tenant_policies {
            let unchanged = reusable
                .and_then(|sets| sets.get(&tenant))
                .filter(|compiled| compiled.inputs == inputs);
            let set = match unchanged {
                Some(compiled) => Some(compiled.set.clone()),
                None => {
                    let mut all = global.clone();
                    all.extend(own);
                    compile(all, &format!("policies of tenant {tenant}"))
                }
            };
            if let Some(set) = set {
                per_tenant.insert(tenant, Compiled { inputs, set });
            }
        }
        match global_set {
            Some(global) if errors.is_empty() => Ok(PolicyStore {
                schema,
                global_inputs,
                global,
                per_tenant,
                locations: sources.locations,
            }),
            _ => Err(errors),
        }
    }

    /// The compiled set a tenant's requests are evaluated against, and its name: the tenant's
    /// id for a tenant with policies of its own, else "" (the global set).
    pub(crate) fn set_for<'a>(&'a self, tenant: &'a str) -> (&'a str, &'a PolicySet) {
        match self.per_tenant.get(tenant) {
            Some(own) => (tenant, &own.set),
            None => ("", &self.global),
        }
    }

    /// `file:line` of a policy.
    pub fn location(&self, id: &str) -> Option<&str> {
        self.locations.get(id).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::PolicyStore;

    fn policy(id: &str, role: &str) -> String {
        format!(
            "@id(\"{id}\")\npermit (principal in Role::\"{role}\", action == Action::\"read\", resource is Agent);\n"
        )
    }

    fn deployment(dir: &Path) {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        std::fs::copy(
            repo.join("schema.cedarschema"),
            dir.join("schema.cedarschema"),
        )
        .unwrap();
        std::fs::write(dir.join("global.cedar"), policy("global", "viewer")).unwrap();
        for tenant in ["acme", "globex"] {
            let own = dir.join("tenants").join(tenant);
            std::fs::create_dir_all(&own).unwrap();
            std::fs::write(own.join("own.cedar"), policy(&format!("{tenant}-1"), "a")).unwrap();
        }
    }

    fn set(store: &PolicyStore, tenant: &str) -> *const cedar_policy::PolicySet {
        std::ptr::from_ref(store.set_for(tenant).1)
    }

    #[test]
    fn a_reload_reuses_exactly_the_sets_whose_files_did_not_change() {
        let dir = tempfile::tempdir().unwrap();
        deployment(dir.path());
        let known = |_: &str| true;
        let first = PolicyStore::load(dir.path(), known, None).unwrap();

        let own = dir.path().join("tenants/acme/own.cedar");
        std::fs::write(&own, format!("\n\n{}", policy("acme-2", "b"))).unwrap();
        let second = PolicyStore::load(dir.path(), known, Some(&first)).unwrap();
        assert_eq!(set(&second, "globex"), set(&first, "globex"), "reused");
        assert_ne!(set(&second, "acme"), set(&first, "acme"), "recompiled");
        let acme = second.set_for("acme").1;
        assert!(
            acme.policy(&cedar_policy::PolicyId::new("acme-2"))
                .is_some()
        );
        assert!(
            acme.policy(&cedar_policy::PolicyId::new("acme-1"))
                .is_none()
        );
        assert_eq!(
            second.location("acme-2"),
            Some(format!("{}:3", own.display()).as_str())
        );
        assert!(second.location("globex-1").is_some());

        // A changed global file changes every set.
        let global = dir.path().join("global.cedar");
        std::fs::write(&global, policy("global-2", "viewer")).unwrap();
        let third = PolicyStore::load(dir.path(), known, Some(&second)).unwrap();
        for tenant in ["acme", "globex", "nobody"] {
            assert_ne!(set(&third, tenant), set(&second, tenant), "{tenant}");
            let id = cedar_policy::PolicyId::new("global-2");
            assert!(third.set_for(tenant).1.policy(&id).is_some(), "{tenant}");
        }

        // A changed file that fails validation fails the load, reuse or not.
        std::fs::write(
            &own,
            "@id(\"bad\")\npermit (principal, action, resource) when { resource.nope };\n",
        )
        .unwrap();
        let errors = PolicyStore::load(dir.path(), known, Some(&third))
            .err()
            .unwrap();
        assert!(errors.iter().any(|e| e.contains("\"bad\"")), "{errors:?}");
    }
}
