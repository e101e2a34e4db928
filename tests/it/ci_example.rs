//! The policy CI example (deploy/ci/policy-ci.yml): every `tollgate` command its steps run is run
//! here, from the repository's root, exactly as written, and passes on the shipped configuration
//! and the shipped sample of recorded traffic (policies/tests/recorded.jsonl).

use std::path::Path;

use crate::support::tollgate::BIN;

#[test]
fn every_tollgate_command_of_the_policy_ci_example_passes_on_the_shipped_configuration() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workflow: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("deploy/ci/policy-ci.yml")).unwrap(),
    )
    .unwrap();
    let steps = workflow["jobs"]["policies"]["steps"].as_sequence().unwrap();
    let commands: Vec<&str> = steps
        .iter()
        .filter_map(|s| s["run"].as_str())
        .filter(|run| run.starts_with("tollgate "))
        .collect();
    assert_eq!(commands.len(), 3, "check, test and replay: {commands:?}");
    let dir = tempfile::tempdir().unwrap();
    for command in commands {
        // `> file` is the shell's; the rest is the command's own arguments.
        let (command, redirect) = match command.split_once(" > ") {
            Some((command, file)) => (command, Some(dir.path().join(file.trim()))),
            None => (command, None),
        };
        let args: Vec<&str> = command.split_whitespace().skip(1).collect();
        let output = std::process::Command::new(BIN)
            .args(&args)
            .current_dir(root)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{command}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if let Some(file) = redirect {
            std::fs::write(&file, &output.stdout).unwrap();
            let xml = std::fs::read_to_string(&file).unwrap();
            assert!(xml.contains("<testsuite"), "JUnit: {xml}");
        }
        if command.contains(" replay ") {
            let said = String::from_utf8_lossy(&output.stdout);
            assert!(said.contains(": 0 would change"), "{said}");
            assert!(
                !said.starts_with("replayed 0 "),
                "the sample has decisions: {said}"
            );
        }
    }
}
