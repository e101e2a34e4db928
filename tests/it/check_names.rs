//! Names that mean nothing are refused by `tollgate check` (and so by `serve` and a reload):
//! a feature a tenant withdraws that nothing grants, a feature a policy reads that nothing has,
//! two routes with one id, two API keys of a tenant with one name.

use std::path::{Path, PathBuf};

use crate::support::tollgate::{check, cli};

/// The shipped example copied to a directory of its own (config/ and policies/ side by side).
fn example() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["config", "policies"] {
        copy_tree(&repo.join(sub), &dir.path().join(sub));
    }
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

/// Changes one file of the example (`old` must be in it) and checks the whole configuration.
fn check_edited(file: &str, old: &str, new: &str) -> (bool, String) {
    let dir = example();
    let path = dir.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(old), "{old:?} is not in {file}");
    std::fs::write(&path, text.replacen(old, new, 1)).unwrap();
    let main: PathBuf = dir.path().join("config/tollgate.yaml");
    check(&[&main])
}

#[test]
fn the_example_itself_passes() {
    let dir = example();
    let (ok, output) = check(&[&dir.path().join("config/tollgate.yaml")]);
    assert!(ok, "{output}");
}

#[test]
fn a_tenant_withdrawing_a_feature_nothing_grants_is_refused() {
    let (ok, output) = check_edited(
        "config/tenants.yaml",
        "    limits: { max_users: 75 }",
        "    limits: { max_users: 75 }\n    features: { ssso: false }",
    );
    assert!(!ok);
    assert!(
        output.contains("tenants[0] (acme).features.ssso"),
        "{output}"
    );
    assert!(
        output.contains("no plan or tenant has the feature \"ssso\""),
        "{output}"
    );
    // Granting a feature of its own is fine, and withdrawing a plan's feature too.
    let (ok, output) = check_edited(
        "config/tenants.yaml",
        "    limits: { max_users: 75 }",
        "    limits: { max_users: 75 }\n    features: { beta_search: true, workflows: false }",
    );
    assert!(ok, "{output}");
}

/// A feature a policy reads may be one this deployment does not sell (a shared policy pack): a
/// warning at its line, not an error.
#[test]
fn a_policy_reading_a_feature_nothing_has_is_warned_about_at_its_line() {
    let (ok, output) = check_edited(
        "policies/guards.cedar",
        "contains(\"advanced_analytics\")",
        "contains(\"advanced_analytcs\")",
    );
    assert!(ok, "{output}");
    assert!(output.contains("warning: "), "{output}");
    assert!(
        output.contains("guards.cedar:15: policy \"analytics-needs-plan-feature\": no plan or tenant has the feature \"advanced_analytcs\""),
        "{output}"
    );
}

#[test]
fn two_routes_with_one_id_are_refused() {
    let (ok, output) = check_edited(
        "config/routes.yaml",
        "{ id: read-agent,",
        "{ id: list-agents,",
    );
    assert!(!ok);
    assert!(
        output.contains("id \"list-agents\" is used twice (first at routes[0])"),
        "{output}"
    );
}

#[test]
fn two_keys_of_a_tenant_with_one_name_are_refused_and_keys_create_will_not_make_them() {
    let dir = example();
    let config = dir.path().join("config/tollgate.yaml");
    let state = tempfile::tempdir().unwrap();
    let create = |name: &str| {
        cli(
            &[
                "keys",
                "create",
                "--config",
                config.to_str().unwrap(),
                "--tenant",
                "acme",
                "--name",
                name,
            ],
            &[("TOLLGATE_STATE_DIR", state.path())],
        )
    };
    assert_eq!(create("ci").code, Some(0));
    let again = create("ci");
    assert_eq!(again.code, Some(2));
    assert!(
        again.stderr.contains("already has a key named \"ci\""),
        "{}",
        again.stderr
    );
    // Written by hand: refused on load.
    let keys = dir.path().join("config/api-keys.yaml");
    let text = std::fs::read_to_string(&keys).unwrap();
    let entry: String = text
        .lines()
        .skip_while(|l| !l.contains("- id: ci"))
        .map(|l| format!("{l}\n"))
        .collect();
    let hash = entry
        .lines()
        .find(|l| l.contains("sha256"))
        .unwrap()
        .to_string();
    let other = entry.replace(&hash, &format!("    sha256: {}", "ab".repeat(32)));
    std::fs::write(&keys, format!("{text}{other}")).unwrap();
    let (ok, output) = check(&[&config]);
    assert!(!ok);
    assert!(
        output.contains("id \"ci\" is used twice for tenant \"acme\""),
        "{output}"
    );
}

#[test]
fn check_says_which_files_it_takes_when_given_a_plans_or_tenants_file() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    for (file, kind) in [
        ("plans.yaml", "plans"),
        ("tenants.yaml", "tenants"),
        ("routes.yaml", "routes"),
        ("api-keys.yaml", "API keys"),
    ] {
        let (ok, output) = check(&[&repo.join(file)]);
        assert!(!ok, "{file}");
        assert!(
            output.contains(&format!("{file}: this is a {kind} file"))
                && output.contains("checks the tenants, plans, keys, routes and policies"),
            "{output}"
        );
        assert!(!output.contains("unknown field"), "{output}");
    }
}

/// Adds a file to the example and checks it.
fn check_added(file: &str, text: &str) -> (bool, String) {
    let dir = example();
    let path = dir.path().join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    check(&[&dir.path().join("config/tollgate.yaml")])
}

#[test]
fn each_mistake_is_placed_where_it_is() {
    // A duplicate @id: at the duplicate (files are read in name order), naming the first.
    let (ok, output) = check_added(
        "policies/zz-extra.cedar",
        "// more\n@id(\"viewer-read\")\npermit (principal, action, resource);\n",
    );
    assert!(!ok);
    assert!(
        output.contains("zz-extra.cedar:2: policy id \"viewer-read\" is already used at")
            && output.contains("roles.cedar:3"),
        "{output}"
    );
    // A missing `;`: what was expected.
    let (_, output) = check_added(
        "policies/extra.cedar",
        "@id(\"a\")\npermit (principal, action, resource)\n@id(\"b\")\npermit (principal, action, resource);\n",
    );
    assert!(
        output.contains("extra.cedar:3: unexpected token `@`") && output.contains("expected `;`"),
        "{output}"
    );
    // A policy without @id: which one.
    let (_, output) = check_added(
        "policies/extra.cedar",
        "@id(\"a\")\npermit (principal, action, resource);\npermit (principal, action, resource);\n",
    );
    assert!(
        output.contains("extra.cedar: policy 2 of the file has no @id"),
        "{output}"
    );
    // A route: its index, id, key, line, and the known values sorted.
    let (_, output) = check_edited(
        "config/routes.yaml",
        "path: /api/v1/agents, action: write",
        "path: /api/v1/agents, action: writ",
    );
    assert!(
        output.contains("routes.yaml:9: routes[2] (create-agent).action: \"writ\" is not an action of the schema (known: admin, execute, read, read_analytics, read_public, write)"),
        "{output}"
    );
    // A missing tenants file: the key and its line in the main file.
    let (_, output) = check_edited(
        "config/tollgate.yaml",
        "tenants_file: tenants.yaml",
        "tenants_file: missing.yaml",
    );
    let line =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tollgate.yaml"))
            .unwrap()
            .lines()
            .position(|l| l.contains("tenants_file:"))
            .unwrap()
            + 1;
    assert!(
        output.contains(&format!(
            "tollgate.yaml:{line}: tenancy.tenants_file: file \"missing.yaml\" not found"
        )),
        "{output}"
    );
}

#[test]
fn mistakes_in_several_files_are_all_reported_in_one_run() {
    let dir = example();
    let edit = |file: &str, old: &str, new: &str| {
        let path = dir.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(old), "{old:?} in {file}");
        std::fs::write(&path, text.replacen(old, new, 1)).unwrap();
    };
    edit(
        "config/plans.yaml",
        "{ name: hourly, limit: 100, window: 1h }",
        "{ name: hourly, limit: 100, window: 0s }",
    );
    edit(
        "config/tollgate.yaml",
        "max_headers: 100 ",
        "max_headers: 0 ",
    );
    edit(
        "config/tenants.yaml",
        "plan: professional",
        "plan: profesional",
    );
    edit(
        "config/routes.yaml",
        "path: /api/v1/agents, action: write",
        "path: /api/v1/agents, action: writ",
    );
    let keys = dir.path().join("config/api-keys.yaml");
    let text = std::fs::read_to_string(&keys).unwrap();
    std::fs::write(
        &keys,
        format!("{text}  - {{ id: broken, tenant: acme, sha256: nothex }}\n"),
    )
    .unwrap();
    let (ok, output) = check(&[&dir.path().join("config/tollgate.yaml")]);
    assert!(!ok);
    for expected in [
        "tollgate.yaml:17: server.limits.max_headers: 0 is too small",
        "plans.yaml:",
        "tenants.yaml:5: tenants[0] (acme).plan: unknown plan \"profesional\"",
        "routes.yaml:9: routes[2] (create-agent).action",
        "api-keys.yaml:",
    ] {
        assert!(output.contains(expected), "{expected} in:\n{output}");
    }
}
