//! Feature names read by policies (`context.features.contains("x")`, `containsAll`,
//! `containsAny`) should be features some plan or tenant has: a misspelt one makes a policy
//! that never matches, silently. Each one that is not is a warning (`check` prints it, `serve`
//! and every reload log it).

use std::collections::BTreeSet;

use cedar_policy::Policy;

/// The string literals a policy passes to a `features.contains…(…)` call.
fn read_features(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("features.contains") {
        rest = &rest[at..];
        let Some(open) = rest.find('(') else { break };
        let mut depth = 0;
        let mut end = rest.len();
        for (i, c) in rest[open..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let arguments = &rest[open..end];
        found.extend(arguments.split('"').skip(1).step_by(2).map(str::to_string));
        rest = &rest[end..];
    }
    found
}

/// One message per policy feature that nothing has, at the policy's `file:line`.
pub(super) fn check<'a>(
    policies: impl Iterator<Item = &'a Policy>,
    known: &BTreeSet<&str>,
    location: impl Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) {
    let list = known.iter().copied().collect::<Vec<_>>().join(", ");
    for policy in policies {
        let id = policy.id().to_string();
        for feature in read_features(&policy.to_string()) {
            if !known.contains(feature.as_str()) {
                let at = location(&id).unwrap_or_else(|| "policies".to_string());
                errors.push(format!(
                    "{at}: policy {id:?}: no plan or tenant has the feature {feature:?}, so it is never there (a misspelling? known: {list})"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_features_a_policy_reads_are_found_in_every_form() {
        let text = r#"forbid (principal, action, resource) unless {
            context.features.contains("advanced_analytics") &&
            resource.tenant.features.containsAny(["a", "b"]) &&
            context.features.containsAll(["c"]) && context.plan == "not-a-feature" };"#;
        assert_eq!(
            super::read_features(text),
            ["advanced_analytics", "a", "b", "c"]
        );
    }
}
