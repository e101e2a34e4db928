//! `tollgate check`: every shipped configuration passes; broken ones name the file and the key.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::tollgate::{BIN, check};

/// Every YAML file shipped under `config/`.
fn shipped_yaml() -> Vec<PathBuf> {
    crate::support::shipped_yaml("config")
}

/// Main configuration files have an `upstream:` section; the others are named by them.
fn is_main_config(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .any(|l| l.starts_with("upstream:"))
}

#[test]
fn every_shipped_config_passes_check_and_loads_every_shipped_file() {
    let files = shipped_yaml();
    let mains: Vec<&Path> = files
        .iter()
        .map(PathBuf::as_path)
        .filter(|p| is_main_config(p))
        .collect();
    assert!(!mains.is_empty());
    let (ok, output) = check(&mains);
    assert!(ok, "{output}");
    for file in &mains {
        assert!(
            output.contains(&format!("{}: ok", file.display())),
            "{output}"
        );
    }
    // Every other shipped file is loaded (and so checked) through a main configuration.
    let named: String = mains
        .iter()
        .map(|m| std::fs::read_to_string(m).unwrap())
        .collect();
    for file in files.iter().filter(|f| !is_main_config(f)) {
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            named.contains(name),
            "{name} is shipped but no main config loads it"
        );
    }
}

/// Writes `yaml` to a file and returns check's verdict and output.
fn check_text(yaml: &str) -> (PathBuf, bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, yaml).unwrap();
    let (ok, output) = check(&[&file]);
    (file, ok, output)
}

#[test]
fn a_bad_value_is_reported_with_file_key_and_value() {
    let (file, ok, output) =
        check_text("upstream:\n  url: http://127.0.0.1:1\n  connect_timeout: soon\n");
    assert!(!ok);
    // `file:line: key.path: message`, as compilers write it.
    assert!(
        output.contains(&format!("{}:3: upstream.connect_timeout", file.display())),
        "{output}"
    );
    assert!(output.contains("\"soon\""), "{output}");
}

#[test]
fn an_unknown_key_is_refused() {
    let (_, ok, output) =
        check_text("server:\n  lissen: 0.0.0.0:1\nupstream:\n  url: http://a:1\n");
    assert!(!ok);
    assert!(
        output.contains("server") && output.contains("lissen"),
        "{output}"
    );
}

#[test]
fn every_validation_error_is_reported_at_once() {
    let yaml = "server:\n  listen: nowhere\n  limits:\n    max_headers: 2\nupstream:\n  url: ftp://x/base\nforwarding:\n  trusted_proxies: [10.0.0.0/8, bogus]\n";
    let (_, ok, output) = check_text(yaml);
    assert!(!ok);
    for key in [
        "server.listen",
        "server.limits.max_headers",
        "upstream.url",
        "forwarding.trusted_proxies[1]",
    ] {
        assert!(output.contains(key), "{key} missing from: {output}");
    }
    assert!(output.contains("\"bogus\""), "{output}");
}

#[test]
fn a_missing_environment_variable_names_its_line() {
    let (_, ok, output) = check_text("upstream:\n  url: ${TOLLGATE_TEST_SURELY_UNSET}\n");
    assert!(!ok);
    assert!(
        output.contains("line 2") && output.contains("TOLLGATE_TEST_SURELY_UNSET"),
        "{output}"
    );
}

#[test]
fn missing_tls_files_and_missing_config_files_are_named() {
    let (_, ok, output) = check_text(
        "server:\n  tls:\n    cert_file: /nonexistent/tls.crt\n    key_file: /nonexistent/tls.key\nupstream:\n  url: http://a:1\n",
    );
    assert!(!ok);
    assert!(
        output.contains("server.tls.cert_file") && output.contains("server.tls.key_file"),
        "{output}"
    );

    let (ok, output) = check(&[Path::new("/nonexistent/tollgate.yaml")]);
    assert!(!ok);
    assert!(output.contains("/nonexistent/tollgate.yaml"), "{output}");
}

#[test]
fn serve_refuses_to_start_on_a_broken_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tollgate.yaml");
    std::fs::write(
        &file,
        "upstream:\n  url: http://127.0.0.1:1\n  http2: maybe\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("upstream.http2"), "{stderr}");
}

#[test]
fn check_follows_the_config_into_tenants_plans_and_keys_files() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("plans.yaml", "plans:\n  basic:\n    features: [Bad Name]\n");
    write(
        "tenants.yaml",
        "tenants:\n  - id: acme\n    plan: gold\n    status: active\n  - id: Not_A_Label\n    plan: basic\n    status: trial\n",
    );
    write(
        "keys.yaml",
        "keys:\n  - { id: k, tenant: acme, sha256: nothex }\n",
    );
    write(
        "tollgate.yaml",
        "upstream:\n  url: http://127.0.0.1:1\ntenancy:\n  tenants_file: tenants.yaml\n  plans_file: plans.yaml\nidentity:\n  api_keys: { file: keys.yaml }\n",
    );
    let (ok, output) = check(&[&dir.path().join("tollgate.yaml")]);
    assert!(!ok);
    assert!(
        output.contains("plans.yaml:2: plans.basic.features: invalid feature name \"Bad Name\""),
        "{output}"
    );

    write("plans.yaml", "plans:\n  basic: {}\n");
    let (ok, output) = check(&[&dir.path().join("tollgate.yaml")]);
    assert!(!ok);
    assert!(
        output.contains("tenants.yaml:2: tenants[0] (acme).plan: unknown plan \"gold\""),
        "{output}"
    );
    assert!(
        output.contains("tenants[1] (Not_A_Label).id: must be a DNS label"),
        "{output}"
    );
    assert!(
        output
            .contains("tenants[1] (Not_A_Label).trial_ends_at: a trial tenant needs trial_ends_at"),
        "{output}"
    );

    write(
        "tenants.yaml",
        "tenants:\n  - { id: acme, plan: basic, status: active }\n",
    );
    let (ok, output) = check(&[&dir.path().join("tollgate.yaml")]);
    assert!(!ok);
    assert!(
        output.contains("keys.yaml:2: keys[0] (k): sha256 must be 64 hex digits"),
        "{output}"
    );
}

#[test]
fn the_grafana_dashboard_only_queries_metrics_tollgate_defines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/tollgate.json")).unwrap(),
    )
    .unwrap();
    let defined = std::fs::read_to_string(root.join("src/metrics.rs")).unwrap();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if let Some(name) = word.strip_prefix("tollgate_") {
                    let base = ["_bucket", "_count", "_sum"]
                        .iter()
                        .fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
                    assert!(
                        defined.contains(&format!("\"tollgate_{base}\"")),
                        "{} queries undefined tollgate_{base}",
                        panel["title"]
                    );
                    queried += 1;
                }
            }
        }
    }
    assert!(queried >= 15, "{queried}");
}

#[test]
fn an_authorizer_listener_must_name_its_one_gateway() {
    let base = "upstream:\n  url: http://127.0.0.1:1\n";
    let (_, ok, output) = check_text(&format!("{base}authorizer:\n  listen: 127.0.0.1:18082\n"));
    assert!(!ok);
    assert!(output.contains("authorizer.gateway"), "{output}");
    let (_, ok, output) = check_text(&format!(
        "{base}authorizer:\n  - {{ listen: 127.0.0.1:18082, gateway: nginx }}\n  - {{ listen: 127.0.0.1:18082, gateway: haproxy }}\n"
    ));
    assert!(!ok, "{output}");
    assert!(output.contains("haproxy"), "{output}");
    let (_, ok, output) = check_text(&format!(
        "{base}authorizer:\n  - {{ listen: 127.0.0.1:18082, gateway: nginx, envoy_path_prefix: /x }}\n  - {{ listen: 127.0.0.1:18082, gateway: traefik }}\n"
    ));
    assert!(!ok);
    assert!(
        output.contains("authorizer[0].envoy_path_prefix"),
        "{output}"
    );
    assert!(output.contains("authorizer[1].listen"), "{output}");
    let (_, ok, output) = check_text(&format!(
        "{base}authorizer:\n  - {{ listen: 127.0.0.1:18082, gateway: nginx }}\n  - {{ listen: 127.0.0.1:18083, gateway: envoy }}\n  - {{ listen: 127.0.0.1:18084, gateway: envoy-grpc }}\n"
    ));
    assert!(ok, "{output}");
    // TLS on an authorizer listener is server.tls's certificate: without one, refused.
    let (_, ok, output) = check_text(&format!(
        "{base}authorizer:\n  - {{ listen: 127.0.0.1:18084, gateway: envoy-grpc, tls: true }}\n"
    ));
    assert!(!ok);
    assert!(
        output.contains(
            "authorizer.tls: an authorizer listener is served with server.tls's certificate"
        ),
        "{output}"
    );
}

#[test]
fn a_short_admin_token_is_refused() {
    let (_, ok, output) =
        check_text("upstream:\n  url: http://127.0.0.1:1\nadmin:\n  token: short\n");
    assert!(!ok);
    assert!(output.contains("admin.token"), "{output}");
}
