//! What a SQL statement is, for metrics and spans: its family (verb and main table,
//! a bounded label) and its text without literal values.

/// The part of diesel's debug rendering before the bind values.
pub fn statement_text(debug: &str) -> &str {
    debug.split(" -- binds: ").next().unwrap_or(debug).trim()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// The verb and main table of a statement, lower case: `select products`,
/// `insert orders`, `update inventory_levels`, `begin`. A table that is not a plain
/// identifier (a subquery, `VALUES`) leaves just the verb.
pub fn family(sql: &str) -> String {
    let words: Vec<&str> = sql.split_whitespace().take(400).collect();
    let Some(first) = words.first() else {
        return "empty".into();
    };
    let verb = first
        .trim_matches(|c: char| !c.is_ascii_alphabetic())
        .to_ascii_lowercase();
    let after = |keyword: &str| {
        words
            .iter()
            .position(|w| w.eq_ignore_ascii_case(keyword))
            .and_then(|i| words.get(i + 1))
            .copied()
    };
    let table = match verb.as_str() {
        "select" | "with" => after("FROM"),
        "insert" => after("INTO"),
        "update" => words.get(1).copied(),
        "delete" => after("FROM"),
        "copy" => words.get(1).copied(),
        _ => None,
    };
    let table = table
        .map(|t| t.trim_matches('"').to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t.len() <= 64 && t.chars().all(is_ident))
        .filter(|t| t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'));
    let verb = match verb.as_str() {
        "select" | "with" | "insert" | "update" | "delete" | "copy" | "begin" | "commit"
        | "rollback" | "savepoint" | "release" | "set" | "listen" | "notify" | "lock"
        | "truncate" | "create" | "alter" | "drop" | "analyze" | "vacuum" => verb,
        _ => "other".into(),
    };
    match table {
        Some(t) => format!("{verb} {t}"),
        None => verb,
    }
}

/// The statement with string and number literals replaced by `?` (bind placeholders
/// `$1` stay), so span attributes never carry customer data.
pub fn sanitize(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut prev: char = ' ';
    while let Some(c) = chars.next() {
        if c == '\'' {
            // A string literal; '' is an escaped quote inside it.
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                    }
                    Some('\'') | None => break,
                    Some(_) => {}
                }
            }
            out.push('?');
            prev = '?';
        } else if c.is_ascii_digit() && !is_ident(prev) && prev != '$' {
            while chars
                .peek()
                .is_some_and(|d| d.is_ascii_digit() || *d == '.' || *d == 'e' || *d == 'E')
            {
                chars.next();
            }
            out.push('?');
            prev = '?';
        } else {
            out.push(c);
            prev = c;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_name_the_verb_and_the_main_table() {
        assert_eq!(
            family("SELECT id, title FROM products WHERE id = ANY($1)"),
            "select products"
        );
        assert_eq!(
            family("INSERT INTO jobs (queue) VALUES ($1) RETURNING id"),
            "insert jobs"
        );
        assert_eq!(
            family("UPDATE inventory_levels SET reserved = 1"),
            "update inventory_levels"
        );
        assert_eq!(family("DELETE FROM jobs WHERE id = $1"), "delete jobs");
        assert_eq!(family("BEGIN"), "begin");
        assert_eq!(family("SELECT 1"), "select");
        assert_eq!(family("SELECT * FROM (VALUES (1)) v"), "select");
        assert_eq!(family("SELECT x FROM \"products\""), "select products");
        assert_eq!(family("EXPLAIN SELECT 1"), "other");
        assert_eq!(family(""), "empty");
    }

    #[test]
    fn sanitizing_removes_literals_and_keeps_placeholders() {
        assert_eq!(
            sanitize("SELECT * FROM t WHERE email = 'a''b@c.d' AND n > 42 AND id = $1 LIMIT 10"),
            "SELECT * FROM t WHERE email = ? AND n > ? AND id = $1 LIMIT ?"
        );
        assert_eq!(sanitize("SELECT col2 FROM t1"), "SELECT col2 FROM t1");
        assert_eq!(sanitize("SELECT 1.5e3"), "SELECT ?");
    }

    #[test]
    fn statement_text_drops_the_binds() {
        assert_eq!(
            statement_text("SELECT $1 -- binds: [\"secret\"]"),
            "SELECT $1"
        );
    }
}
