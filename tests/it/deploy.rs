//! The Kubernetes examples: valid against the Kubernetes schemas (`kubernetes-validate`), and the
//! configuration they mount is a Tollgate configuration that `tollgate check` accepts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

fn manifests() -> Vec<PathBuf> {
    crate::support::shipped_yaml("deploy/kubernetes")
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

#[test]
fn the_kubernetes_manifests_are_valid_against_the_kubernetes_schemas() {
    for file in manifests() {
        let output = Command::new("kubernetes-validate")
            .arg("--strict")
            .arg(&file)
            .output()
            .expect("kubernetes-validate (scripts/test.sh installs it from PyPI)");
        assert!(
            output.status.success(),
            "{}: {}{}",
            file.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn the_configuration_the_manifests_mount_passes_tollgate_check() {
    for file in manifests() {
        let docs = documents(&file);
        let config_maps: HashMap<&str, &Value> = docs
            .iter()
            .filter(|d| d["kind"] == "ConfigMap")
            .map(|d| (d["metadata"]["name"].as_str().unwrap(), &d["data"]))
            .collect();
        for deployment in docs.iter().filter(|d| d["kind"] == "Deployment") {
            let spec = &deployment["spec"]["template"]["spec"];
            let volumes: HashMap<&str, &str> = spec["volumes"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|v| Some((v["name"].as_str()?, v["configMap"]["name"].as_str()?)))
                .collect();
            for container in spec["containers"].as_sequence().unwrap() {
                let args: Vec<&str> = container["args"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let Some(config) = args
                    .iter()
                    .position(|a| *a == "--config")
                    .and_then(|i| args.get(i + 1))
                else {
                    continue;
                };
                let root = tempfile::tempdir().unwrap();
                let local = |path: &str| root.path().join(path.trim_start_matches('/'));
                for mount in container["volumeMounts"].as_sequence().unwrap() {
                    let Some(map) = volumes.get(mount["name"].as_str().unwrap()) else {
                        continue;
                    };
                    let dir = local(mount["mountPath"].as_str().unwrap());
                    std::fs::create_dir_all(&dir).unwrap();
                    for (key, value) in config_maps[map].as_mapping().unwrap() {
                        let text = value.as_str().unwrap().replace(
                            "/etc/tollgate",
                            &local("/etc/tollgate").display().to_string(),
                        );
                        let text = text.replace(
                            "/var/lib/tollgate",
                            &local("/var/lib/tollgate").display().to_string(),
                        );
                        std::fs::write(dir.join(key.as_str().unwrap()), text).unwrap();
                    }
                }
                let run = crate::support::tollgate::cli(
                    &["check", "--config", local(config).to_str().unwrap()],
                    &[],
                );
                assert!(run.ok, "{}: {}", file.display(), run.stderr);
            }
        }
    }
}

#[test]
fn the_systemd_unit_verifies_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("deploy/systemd/tollgate.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/tollgate serve --config"));
    // Verified with the binary this build made, where the unit expects the installed one.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("tollgate.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/tollgate", crate::support::tollgate::BIN),
    )
    .unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze (scripts/test.sh installs systemd)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Unknown or misspelt keys are only warnings: any output at all is a failure here.
    assert!(output.status.success() && said.trim().is_empty(), "{said}");
}

#[test]
fn the_sidecar_application_is_reachable_only_through_tollgate() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/sidecar.yaml");
    let docs = documents(&path);
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment");
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap();
    let app = containers.iter().find(|c| c["name"] == "app").unwrap();
    assert!(
        app.get("ports").is_none(),
        "the application declares no port: it must not be reachable from outside the pod"
    );
    let env = serde_yaml::to_string(&app["env"]).unwrap();
    assert!(
        env.contains("127.0.0.1"),
        "the application binds loopback: {env}"
    );
    let policy = docs
        .iter()
        .find(|d| d["kind"] == "NetworkPolicy")
        .expect("a NetworkPolicy");
    assert_eq!(
        policy["spec"]["podSelector"], deployment["spec"]["selector"],
        "the policy covers the application's pods"
    );
    let ports: Vec<u64> = policy["spec"]["ingress"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|rule| rule["ports"].as_sequence().unwrap().clone())
        .map(|p| p["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, [8080, 9090], "only Tollgate's ports admit traffic");
}
