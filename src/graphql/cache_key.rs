//! The cache key of a shareable storefront request.

/// The cache key of a shareable request: API version, normalized document, operation
/// name and variables (in a canonical order). Context (`@inContext`) is in the document.
pub fn of(version: &str, request: &async_graphql::Request) -> crate::cache::Key {
    let document = normalize_document(&request.query);
    let variables = serde_json::to_value(&request.variables)
        .map(|v| canonical_json(&v))
        .unwrap_or_default();
    crate::cache::key_of(&[
        version.as_bytes(),
        document.as_bytes(),
        request.operation_name.as_deref().unwrap_or("").as_bytes(),
        variables.as_bytes(),
    ])
}

/// Drops comments, commas and insignificant white space (strings are kept as written),
/// so that formatting does not split the cache.
pub fn normalize_document(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    let mut chars = query.chars().peekable();
    let mut pending_space = false;
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' || c == '\r' {
                        break;
                    }
                }
                pending_space = true;
            }
            ' ' | '\t' | '\n' | '\r' | ',' | '\u{feff}' => pending_space = true,
            '"' => {
                if pending_space && out.ends_with(word) {
                    out.push(' ');
                }
                pending_space = false;
                out.push('"');
                let block = chars.peek() == Some(&'"') && {
                    let mut ahead = chars.clone();
                    ahead.next();
                    ahead.peek() == Some(&'"')
                };
                if block {
                    out.push_str("\"\"");
                    chars.next();
                    chars.next();
                    let mut quotes = 0;
                    for c in chars.by_ref() {
                        out.push(c);
                        quotes = if c == '"' { quotes + 1 } else { 0 };
                        if quotes == 3 && !out[..out.len() - 3].ends_with('\\') {
                            break;
                        }
                    }
                } else {
                    let mut escaped = false;
                    for c in chars.by_ref() {
                        out.push(c);
                        if escaped {
                            escaped = false;
                        } else if c == '\\' {
                            escaped = true;
                        } else if c == '"' {
                            break;
                        }
                    }
                }
            }
            c => {
                if pending_space && word(c) && out.ends_with(word) {
                    out.push(' ');
                }
                pending_space = false;
                out.push(c);
            }
        }
    }
    out
}

/// JSON with object keys sorted at every level.
fn canonical_json(v: &serde_json::Value) -> String {
    fn write(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String((*k).clone()).to_string());
                    out.push(':');
                    write(&map[*k], out);
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_does_not_change_the_normalized_document() {
        let a =
            "query Q($h: String!) {\n  product(handle: $h) { # the product\n    title, id\n  }\n}";
        let b = "query Q($h:String!){product(handle:$h){title id}}";
        assert_eq!(normalize_document(a), normalize_document(b));
        assert_eq!(normalize_document(b), b);
        // Strings (and what looks like a comment inside them) are kept as written.
        let s = r#"{ products(query: "title:a  # b, c") { nodes { id } } }"#;
        assert!(normalize_document(s).contains(r#""title:a  # b, c""#));
        let block = "{ a(x: \"\"\"  two  spaces \"\"\") }";
        assert!(normalize_document(block).contains("\"\"\"  two  spaces \"\"\""));
        // Different documents stay different.
        assert_ne!(normalize_document("{ a b }"), normalize_document("{ ab }"));
    }

    #[test]
    fn variables_are_keyed_in_a_canonical_order() {
        let a = serde_json::json!({ "b": 1, "a": { "y": [1, 2], "x": "s" } });
        let b = serde_json::json!({ "a": { "x": "s", "y": [1, 2] }, "b": 1 });
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_ne!(
            canonical_json(&a),
            canonical_json(&serde_json::json!({ "b": 2, "a": {} }))
        );
    }
}

/// The type and name of the operation a document selects (`operation_name`, or the
/// first operation), from a scan of its top level: no parse, for naming spans before
/// the document is parsed. Anonymous shorthand `{ … }` is a query.
pub fn operation_of(query: &str, operation_name: Option<&str>) -> (&'static str, Option<String>) {
    let mut found: Vec<(&'static str, Option<String>)> = Vec::new();
    let mut depth = 0usize;
    let mut chars = query.char_indices().peekable();
    // The operation keyword seen at depth 0 whose name may follow.
    let mut pending: Option<&'static str> = None;
    while let Some((i, c)) = chars.next() {
        match c {
            '#' => while chars.next_if(|(_, c)| *c != '\n').is_some() {},
            '"' => {
                // Skip a string (block strings end at the next quote too: close enough
                // for a top-level scan, which never looks inside selections).
                let mut escaped = false;
                for (_, c) in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    }
                }
            }
            '{' | '(' => {
                if depth == 0 && c == '{' {
                    if let Some(ty) = pending.take() {
                        found.push((ty, None));
                    } else if found.is_empty() && query[..i].trim().is_empty() {
                        found.push(("query", None));
                    }
                }
                if depth == 0
                    && c == '('
                    && let Some(ty) = pending.take()
                {
                    found.push((ty, None));
                }
                depth += 1;
            }
            '}' | ')' => depth = depth.saturating_sub(1),
            c if depth == 0 && (c.is_ascii_alphabetic() || c == '_') => {
                let mut end = i + c.len_utf8();
                while let Some((j, d)) =
                    chars.next_if(|(_, d)| d.is_ascii_alphanumeric() || *d == '_')
                {
                    end = j + d.len_utf8();
                }
                let word = &query[i..end];
                match (pending, word) {
                    (None, "query") => pending = Some("query"),
                    (None, "mutation") => pending = Some("mutation"),
                    (None, "subscription") => pending = Some("subscription"),
                    (Some(ty), name) => {
                        found.push((ty, Some(name.to_string())));
                        pending = None;
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let chosen = match operation_name {
        Some(wanted) => found
            .iter()
            .find(|(_, n)| n.as_deref() == Some(wanted))
            .or(found.first()),
        None => found.first(),
    };
    chosen.cloned().unwrap_or(("query", None))
}

#[cfg(test)]
mod operation_tests {
    use super::operation_of;

    #[test]
    fn finds_the_selected_operation() {
        assert_eq!(operation_of("{ shop { name } }", None), ("query", None));
        assert_eq!(
            operation_of("query Catalog($n: Int) { products(first: $n) { x } }", None),
            ("query", Some("Catalog".into()))
        );
        assert_eq!(
            operation_of(
                "# a comment with query Fake\nquery A { a } mutation B($s: String = \"}\") { b }",
                Some("B")
            ),
            ("mutation", Some("B".into()))
        );
        assert_eq!(
            operation_of(
                "fragment F on Product { id } query { products { ...F } }",
                None
            ),
            ("query", None)
        );
        assert_eq!(
            operation_of("mutation { cartCreate { cart { id } } }", None),
            ("mutation", None)
        );
    }
}
