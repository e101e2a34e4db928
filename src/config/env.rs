//! `${VAR}` interpolation in configuration text, done before YAML parsing so that an error can
//! name the line. `${VAR:-default}` supplies a default; `$$` is a literal `$`.

/// Replaces every `${NAME}` / `${NAME:-default}` in `text` using `lookup`.
/// Errors name the 1-based line and the variable.
pub(crate) fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, (usize, String)> {
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.split_inclusive('\n').enumerate() {
        interpolate_line(line, &lookup, &mut out).map_err(|msg| (index + 1, msg))?;
    }
    Ok(out)
}

fn interpolate_line(
    line: &str,
    lookup: &impl Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<(), String> {
    let mut rest = line;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| "unterminated ${...} reference".to_string())?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (expr, None),
            };
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!("invalid environment variable name {name:?}"));
            }
            match (lookup(name), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (write ${{{name}:-default}} for a default)"
                    ));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::interpolate;

    fn env(name: &str) -> Option<String> {
        (name == "UPSTREAM").then(|| "http://10.0.0.1:80".to_string())
    }

    #[test]
    fn replaces_set_variables_and_defaults() {
        let text = "url: ${UPSTREAM}\nlevel: ${LEVEL:-info}\n";
        assert_eq!(
            interpolate(text, env).unwrap(),
            "url: http://10.0.0.1:80\nlevel: info\n"
        );
    }

    #[test]
    fn dollar_dollar_is_a_literal_dollar() {
        assert_eq!(interpolate("a: $${X} $5", env).unwrap(), "a: ${X} $5");
    }

    #[test]
    fn unset_variable_names_line_and_variable() {
        let err = interpolate("a: 1\nb: ${MISSING}\n", env).unwrap_err();
        assert_eq!(err.0, 2);
        assert!(err.1.contains("MISSING"), "{}", err.1);
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(interpolate("a: ${UPSTREAM", env).is_err());
        assert!(interpolate("a: ${BAD-NAME}", env).is_err());
    }
}
