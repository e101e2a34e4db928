//! Where a key of the main configuration file is: `server.limits.max_headers` → its line, so
//! that every validation error says `key.path: message (line N)`.

/// The 1-based line of `path` (dots between keys, `[i]` for the i-th list item) in `text`, as
/// far as it can be followed: the deepest key found.
pub(crate) fn key_line(text: &str, path: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut from = 0;
    let mut parent: Option<usize> = None;
    let mut found = None;
    for segment in path.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let key = format!("{name}:");
        let at = (from..lines.len()).find(|&i| {
            let line = lines[i];
            let body = line.trim_start().trim_start_matches("- ");
            body.starts_with(&key) && parent.is_none_or(|p| indent(line) > p)
        })?;
        found = Some(at);
        parent = Some(indent(lines[at]));
        from = at + 1;
        if let Some(index) = index {
            // Block-style items (`- ...`) under the key; flow style stays at the key's line.
            let items: Vec<usize> = (from..lines.len())
                .take_while(|&i| {
                    lines[i].trim().is_empty() || parent.is_some_and(|p| indent(lines[i]) > p)
                })
                .filter(|&i| lines[i].trim_start().starts_with("- "))
                .collect();
            if let Some(&item) = items.get(index) {
                found = Some(item);
                // The item's own line (`- key:`) and its continuation lines belong to it.
                parent = indent(lines[item]).checked_sub(1);
                from = item;
            }
        }
    }
    found.map(|i| i + 1)
}

/// `file: key.path: message (line N)` as `file:N: key.path: message`, the form editors and CI
/// annotate; anything else as it is.
pub fn placed(error: &str) -> String {
    let Some((rest, line)) = error
        .strip_suffix(')')
        .and_then(|e| e.rsplit_once(" (line "))
        .filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    else {
        return error.to_string();
    };
    match rest.split_once(": ") {
        Some((file, message)) if !file.contains(' ') => format!("{file}:{line}: {message}"),
        _ => error.to_string(),
    }
}

/// Each `key.path: message` error with ` (line N)` added where the key is found.
pub(crate) fn with_lines(text: &str, errors: Vec<String>) -> Vec<String> {
    errors
        .into_iter()
        .map(|error| {
            let key = error.split(": ").next().unwrap_or_default();
            let placed = error.contains("(line ") || key.contains(' ');
            match key_line(text, key).filter(|_| !placed) {
                Some(line) => format!("{error} (line {line})"),
                None => error,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::key_line;

    const TEXT: &str = "server:\n  listen: x\n  limits:\n    max_headers: 0\nadmin:\n  listen: y\nauthorizer:\n  - listen: a\n    gateway: nginx\n  - listen: b\n";

    #[test]
    fn a_line_suffix_becomes_the_file_position() {
        use super::placed;
        assert_eq!(placed("a.yaml: x.y: bad (line 3)"), "a.yaml:3: x.y: bad");
        assert_eq!(placed("a.cedar:4: policy bad"), "a.cedar:4: policy bad");
        assert_eq!(placed("a.yaml: x (line three)"), "a.yaml: x (line three)");
    }

    #[test]
    fn keys_are_found_by_their_path() {
        assert_eq!(key_line(TEXT, "server.listen"), Some(2));
        assert_eq!(key_line(TEXT, "admin.listen"), Some(6));
        assert_eq!(key_line(TEXT, "server.limits.max_headers"), Some(4));
        assert_eq!(key_line(TEXT, "authorizer[1].listen"), Some(10));
        assert_eq!(key_line(TEXT, "authorizer[0].gateway"), Some(9));
        assert_eq!(key_line(TEXT, "nowhere"), None);
    }
}
