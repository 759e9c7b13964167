//! The common part of Shopify's search syntax, as accepted by `products(query:)` and
//! `collections(query:)`: `title:shirt tag:sale -vendor:acme price:>10 (a OR b) "free text"`.
//!
//! Grammar (AND binds tighter than OR, as in Shopify):
//! ```text
//! expr   := and ("OR" and)*
//! and    := unary (["AND"] unary)*
//! unary  := ("NOT" | "-") unary | "(" expr ")" | term
//! term   := [field ":"] [ "<" | "<=" | ">" | ">=" ] value
//! ```
//! Parsing only builds the tree; which fields exist is decided by the caller that turns
//! it into SQL, so an unknown field is reported with the field's name.

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Term(Term),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// `None` for free text.
    pub field: Option<String>,
    pub cmp: Cmp,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    pub fn sql(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("invalid search query: {0}")]
pub struct SearchSyntaxError(pub String);

/// Longest query string accepted, and most terms in one query.
const MAX_QUERY_LEN: usize = 1_000;
const MAX_TERMS: usize = 50;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Word { text: String, quoted: bool },
}

fn tokenize(input: &str) -> Result<Vec<Token>, SearchSyntaxError> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            _ => {
                let mut text = String::new();
                let mut in_quotes = false;
                let mut quoted = false;
                while let Some(&c) = chars.peek() {
                    if c == '"' {
                        in_quotes = !in_quotes;
                        quoted = true;
                        chars.next();
                        continue;
                    }
                    if !in_quotes && (c.is_whitespace() || c == '(' || c == ')') {
                        break;
                    }
                    text.push(c);
                    chars.next();
                }
                if in_quotes {
                    return Err(SearchSyntaxError("unterminated quote".into()));
                }
                tokens.push(Token::Word { text, quoted });
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    terms: usize,
    depth: usize,
}

impl Parser {
    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word { text, quoted: false }) if text == keyword)
    }

    fn expr(&mut self) -> Result<Expr, SearchSyntaxError> {
        let mut alternatives = vec![self.and()?];
        while self.peek_keyword("OR") {
            self.pos += 1;
            alternatives.push(self.and()?);
        }
        Ok(if alternatives.len() == 1 {
            alternatives.pop().expect("one alternative")
        } else {
            Expr::Or(alternatives)
        })
    }

    fn and(&mut self) -> Result<Expr, SearchSyntaxError> {
        let mut parts = vec![self.unary()?];
        loop {
            if self.peek_keyword("AND") {
                self.pos += 1;
            }
            match self.tokens.get(self.pos) {
                None | Some(Token::Close) => break,
                _ if self.peek_keyword("OR") => break,
                _ => parts.push(self.unary()?),
            }
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Expr::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Expr, SearchSyntaxError> {
        if self.peek_keyword("NOT") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        match self.tokens.get(self.pos).cloned() {
            Some(Token::Open) => {
                self.depth += 1;
                if self.depth > 10 {
                    return Err(SearchSyntaxError("parentheses nested too deep".into()));
                }
                self.pos += 1;
                let inner = self.expr()?;
                if self.tokens.get(self.pos) != Some(&Token::Close) {
                    return Err(SearchSyntaxError("missing closing parenthesis".into()));
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(inner)
            }
            Some(Token::Close) => Err(SearchSyntaxError("unexpected ')'".into())),
            Some(Token::Word { text, quoted }) => {
                self.pos += 1;
                self.terms += 1;
                if self.terms > MAX_TERMS {
                    return Err(SearchSyntaxError(format!("more than {MAX_TERMS} terms")));
                }
                if !quoted && text.len() > 1 && text.starts_with('-') {
                    let term = parse_term(&text[1..], false)?;
                    return Ok(Expr::Not(Box::new(Expr::Term(term))));
                }
                Ok(Expr::Term(parse_term(&text, quoted)?))
            }
            None => Err(SearchSyntaxError("expected a term".into())),
        }
    }
}

fn parse_term(text: &str, quoted: bool) -> Result<Term, SearchSyntaxError> {
    let (field, rest) = match text.split_once(':') {
        Some((field, rest))
            if !field.is_empty()
                && field
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') =>
        {
            (Some(field.to_ascii_lowercase()), rest)
        }
        _ => (None, text),
    };
    let (cmp, value) = if field.is_some() {
        if let Some(v) = rest.strip_prefix(">=") {
            (Cmp::Ge, v)
        } else if let Some(v) = rest.strip_prefix("<=") {
            (Cmp::Le, v)
        } else if let Some(v) = rest.strip_prefix('>') {
            (Cmp::Gt, v)
        } else if let Some(v) = rest.strip_prefix('<') {
            (Cmp::Lt, v)
        } else {
            (Cmp::Eq, rest)
        }
    } else {
        (Cmp::Eq, rest)
    };
    if value.is_empty() && !quoted {
        return Err(SearchSyntaxError(format!("the term {text:?} has no value")));
    }
    Ok(Term {
        field,
        cmp,
        value: value.to_string(),
    })
}

/// Parses a query string; `Ok(None)` for an empty one.
pub fn parse(input: &str) -> Result<Option<Expr>, SearchSyntaxError> {
    if input.len() > MAX_QUERY_LEN {
        return Err(SearchSyntaxError(format!(
            "longer than {MAX_QUERY_LEN} characters"
        )));
    }
    let tokens = tokenize(input)?;
    if tokens.is_empty() {
        return Ok(None);
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        terms: 0,
        depth: 0,
    };
    let expr = parser.expr()?;
    if parser.pos != parser.tokens.len() {
        return Err(SearchSyntaxError("unexpected ')'".into()));
    }
    Ok(Some(expr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(field: Option<&str>, cmp: Cmp, value: &str) -> Expr {
        Expr::Term(Term {
            field: field.map(str::to_string),
            cmp,
            value: value.into(),
        })
    }

    #[test]
    fn implicit_and_of_fields_and_free_text() {
        assert_eq!(
            parse("title:shirt tag:sale blue").unwrap().unwrap(),
            Expr::And(vec![
                term(Some("title"), Cmp::Eq, "shirt"),
                term(Some("tag"), Cmp::Eq, "sale"),
                term(None, Cmp::Eq, "blue"),
            ])
        );
    }

    #[test]
    fn or_binds_looser_than_and_and_negation_works() {
        assert_eq!(
            parse("vendor:a tag:x OR -tag:y").unwrap().unwrap(),
            Expr::Or(vec![
                Expr::And(vec![
                    term(Some("vendor"), Cmp::Eq, "a"),
                    term(Some("tag"), Cmp::Eq, "x")
                ]),
                Expr::Not(Box::new(term(Some("tag"), Cmp::Eq, "y"))),
            ])
        );
    }

    #[test]
    fn ranges_quotes_and_parentheses() {
        assert_eq!(
            parse("price:>=10 AND (title:\"red shirt\" OR NOT vendor:acme)")
                .unwrap()
                .unwrap(),
            Expr::And(vec![
                term(Some("price"), Cmp::Ge, "10"),
                Expr::Or(vec![
                    term(Some("title"), Cmp::Eq, "red shirt"),
                    Expr::Not(Box::new(term(Some("vendor"), Cmp::Eq, "acme"))),
                ]),
            ])
        );
    }

    #[test]
    fn malformed_queries_are_errors() {
        assert!(parse("(title:a").is_err());
        assert!(parse("title:a)").is_err());
        assert!(parse("title:\"open").is_err());
        assert!(parse("tag:").is_err());
        assert!(parse(&"a ".repeat(60)).is_err());
        assert_eq!(parse("   ").unwrap(), None);
    }
}
