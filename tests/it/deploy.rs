//! The Kubernetes examples, a Kustomize base with a sidecar and a standalone overlay, and the
//! Istio external authorizer, each rendered by the real `kubectl kustomize`: valid against the
//! Kubernetes schemas (`kubernetes-validate`; Istio's own kinds are checked here), and the
//! configuration they mount is a Tollgate configuration that `tollgate check` accepts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

/// The kustomizations: the Kubernetes overlays (the sidecar first), and deploy/istio.
const OVERLAYS: [&str; 3] = ["sidecar", "standalone", "istio"];

/// An overlay as `kubectl kustomize` renders it (scripts/test.sh installs kubectl).
fn rendered(overlay: &str) -> String {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let kubernetes = deploy.join("kubernetes/overlays").join(overlay);
    let dir = if kubernetes.is_dir() {
        kubernetes
    } else {
        deploy.join(overlay)
    };
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .expect("kubectl (scripts/test.sh installs it)");
    assert!(
        output.status.success(),
        "{overlay}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Each overlay rendered into a file of its own.
fn manifests() -> Vec<(tempfile::TempDir, PathBuf)> {
    OVERLAYS
        .iter()
        .map(|overlay| {
            let dir = tempfile::tempdir().unwrap();
            let file = dir
                .path()
                .join(format!("{}.yaml", overlay.replace('/', "-")));
            std::fs::write(&file, rendered(overlay)).unwrap();
            (dir, file)
        })
        .collect()
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

#[test]
fn the_kubernetes_manifests_are_valid_against_the_kubernetes_schemas() {
    for (_dir, file) in manifests() {
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
    for (_dir, file) in manifests() {
        let docs = documents(&file);
        // ConfigMaps' data and Secrets' stringData, by name: what a volume of either holds.
        let config_maps: HashMap<&str, &Value> = docs
            .iter()
            .filter_map(|d| match d["kind"].as_str() {
                Some("ConfigMap") => Some((d["metadata"]["name"].as_str()?, &d["data"])),
                Some("Secret") => Some((d["metadata"]["name"].as_str()?, &d["stringData"])),
                _ => None,
            })
            .collect();
        for deployment in docs.iter().filter(|d| d["kind"] == "Deployment") {
            let spec = &deployment["spec"]["template"]["spec"];
            let volumes: HashMap<&str, &str> = spec["volumes"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|v| {
                    let source = v["configMap"]["name"]
                        .as_str()
                        .or_else(|| v["secret"]["secretName"].as_str())?;
                    Some((v["name"].as_str()?, source))
                })
                .collect();
            let containers = spec["containers"]
                .as_sequence()
                .unwrap()
                .iter()
                .chain(spec["initContainers"].as_sequence().into_iter().flatten());
            for container in containers {
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
    let (_dir, path) = manifests().into_iter().next().unwrap();
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

/// The Deployment of an overlay (`sidecar.yaml` → `overlays/sidecar`) whose pods Tollgate runs in, and that pod spec's Tollgate container.
fn tollgate_pod(file: &str) -> (Vec<Value>, Value, Value) {
    let overlay = file.trim_end_matches(".yaml");
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&rendered(overlay))
        .map(|d| Value::deserialize(d).unwrap())
        .collect();
    let deployment = docs
        .iter()
        .find(|d| {
            d["kind"] == "Deployment"
                && serde_yaml::to_string(&d["spec"]["template"]["spec"])
                    .unwrap()
                    .contains("tollgate:")
        })
        .unwrap()
        .clone();
    let spec = &deployment["spec"]["template"]["spec"];
    let tollgate = spec["containers"]
        .as_sequence()
        .into_iter()
        .flatten()
        .chain(spec["initContainers"].as_sequence().into_iter().flatten())
        .find(|c| c["name"] == "tollgate")
        .unwrap()
        .clone();
    (docs, deployment, tollgate)
}

#[test]
fn the_sidecar_starts_first_and_stops_last_so_no_admitted_request_loses_the_app() {
    let (_, deployment, tollgate) = tollgate_pod("sidecar.yaml");
    let spec = &deployment["spec"]["template"]["spec"];
    // A native sidecar: an init container that keeps running.
    assert_eq!(tollgate["restartPolicy"], "Always", "{tollgate:?}");
    assert!(
        spec["initContainers"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "tollgate")
    );
    let app = spec["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "app")
        .unwrap();
    let pre_stop = app["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap();
    // The grace period covers the app's preStop and Tollgate's drain (30 s).
    let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace >= pre_stop + 30, "{grace} < {pre_stop} + 30");
    let (_, standalone, tollgate) = tollgate_pod("standalone.yaml");
    let pre_stop = tollgate["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap();
    let grace = standalone["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(grace >= pre_stop + 30, "{grace} < {pre_stop} + 30");
}

#[test]
fn every_manifest_exposes_metrics_to_scrapers_and_keeps_pods_through_disruptions() {
    for file in ["sidecar.yaml", "standalone.yaml"] {
        let (docs, deployment, _) = tollgate_pod(file);
        let labels = &deployment["spec"]["selector"]["matchLabels"];
        let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{file}");
        assert_eq!(annotations["prometheus.io/port"], "9090", "{file}");
        let service = docs
            .iter()
            .find(|d| d["kind"] == "Service" && d["spec"]["selector"] == *labels)
            .unwrap_or_else(|| panic!("{file}: a Service for the pods"));
        let admin = service["spec"]["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "admin")
            .unwrap_or_else(|| panic!("{file}: the Service exposes the admin port"));
        assert_eq!(admin["port"], 9090);
        let monitor = docs.iter().find(|d| d["kind"] == "ServiceMonitor").unwrap();
        assert_eq!(
            monitor["spec"]["selector"]["matchLabels"],
            service["metadata"]["labels"]
        );
        assert_eq!(monitor["spec"]["endpoints"][0]["port"], "admin");
        let budget = docs
            .iter()
            .find(|d| d["kind"] == "PodDisruptionBudget")
            .unwrap();
        assert_eq!(budget["spec"]["selector"]["matchLabels"], *labels, "{file}");
        let replicas = deployment["spec"]["replicas"].as_u64().unwrap();
        let min = budget["spec"]["minAvailable"].as_u64().unwrap();
        assert!(min >= 1 && min < replicas, "{file}: a drain can move a pod");
    }
}

#[test]
fn both_overlays_serve_the_one_base() {
    let shared = |overlay: &str| -> Vec<Value> {
        serde_yaml::Deserializer::from_str(&rendered(overlay))
            .map(|d| Value::deserialize(d).unwrap())
            .filter(|d| {
                ["tollgate-policies", "tollgate-tenancy", "tollgate-api-keys"]
                    .contains(&d["metadata"]["name"].as_str().unwrap_or_default())
            })
            .collect()
    };
    let sidecar = shared("sidecar");
    assert_eq!(
        sidecar.len(),
        3,
        "the base's policies, tenancy and API keys"
    );
    assert_eq!(sidecar, shared("standalone"));
}

#[test]
fn the_istio_provider_policy_service_and_listener_name_one_another() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/istio");
    let mesh = documents(&root.join("mesh-config.yaml"));
    let providers = mesh[0]["spec"]["meshConfig"]["extensionProviders"]
        .as_sequence()
        .unwrap();
    let (_dir, file) = manifests().pop().unwrap();
    let docs = documents(&file);
    let policy = docs
        .iter()
        .find(|d| d["kind"] == "AuthorizationPolicy")
        .expect("an AuthorizationPolicy");
    assert_eq!(policy["spec"]["action"], "CUSTOM");
    let provider = providers
        .iter()
        .find(|p| p["name"] == policy["spec"]["provider"]["name"])
        .expect("the policy's provider is the mesh's");
    let grpc = &provider["envoyExtAuthzGrpc"];
    assert_eq!(grpc["failOpen"], false, "closed when Tollgate is down");
    let service = docs.iter().find(|d| d["kind"] == "Service").unwrap();
    let host = format!(
        "{}.default.svc.cluster.local",
        service["metadata"]["name"].as_str().unwrap()
    );
    assert_eq!(grpc["service"].as_str(), Some(host.as_str()));
    let port = service["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["port"] == grpc["port"])
        .expect("the Service has the provider's port");
    assert_eq!(port["appProtocol"], "grpc");
    let config = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "tollgate-istio-config")
        .unwrap();
    let tollgate: Value =
        serde_yaml::from_str(config["data"]["tollgate.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(tollgate["authorizer"]["gateway"], "envoy-grpc");
    let listen = tollgate["authorizer"]["listen"].as_str().unwrap();
    assert_eq!(
        listen.rsplit(':').next(),
        Some(grpc["port"].as_u64().unwrap().to_string().as_str())
    );
}
