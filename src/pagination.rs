//! Relay-style keyset pagination shared by every connection.
//!
//! A cursor is opaque to clients: base64url of `{"s": sort, "v": sort value, "i": id}`.
//! The next page continues strictly after `(sort value, id)`, so pages never skip or
//! repeat rows when rows are inserted meanwhile, and no statement uses OFFSET.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// The sort key the cursor was issued for; a cursor from another sort is rejected.
    #[serde(rename = "s")]
    pub sort: std::borrow::Cow<'static, str>,
    #[serde(
        rename = "v",
        default,
        skip_serializing_if = "serde_json::Value::is_null"
    )]
    pub value: serde_json::Value,
    #[serde(rename = "i")]
    pub id: i64,
}

impl Cursor {
    pub fn new(sort: &'static str, value: serde_json::Value, id: i64) -> Self {
        Self {
            sort: std::borrow::Cow::Borrowed(sort),
            value,
            id,
        }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(text: &str) -> Result<Self, PageError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| PageError::InvalidCursor)?;
        let cursor: Cursor =
            serde_json::from_slice(&bytes).map_err(|_| PageError::InvalidCursor)?;
        if cursor.value.as_str().is_some_and(|s| s.contains('\0')) {
            return Err(PageError::InvalidCursor);
        }
        Ok(cursor)
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum PageError {
    #[error("the cursor is not valid")]
    InvalidCursor,
    #[error("the cursor was issued for another sort key")]
    CursorSortMismatch,
    #[error("you must provide one of first or last")]
    MissingFirstOrLast,
    #[error("provide either first or last, not both")]
    BothFirstAndLast,
    #[error("use after with first, and before with last")]
    MismatchedCursor,
    #[error("{0} must be between 0 and {1}")]
    OutOfRange(&'static str, usize),
}

/// Connection arguments as a client sent them.
#[derive(Debug, Clone, Default)]
pub struct PageArgs {
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Rows wanted (the query fetches one more to learn whether another page follows).
    pub limit: usize,
    /// Continue after (forward) or before (backward) this position.
    pub cursor: Option<Cursor>,
    /// `last`/`before`: walk the order backwards, then flip the rows.
    pub backward: bool,
}

impl PageArgs {
    pub fn validate(&self, sort: &str, max_page_size: usize) -> Result<Page, PageError> {
        let check = |name: &'static str, n: i32| {
            if n < 0 || n as usize > max_page_size {
                Err(PageError::OutOfRange(name, max_page_size))
            } else {
                Ok(n as usize)
            }
        };
        if (self.first.is_some() && self.before.is_some())
            || (self.last.is_some() && self.after.is_some())
        {
            return Err(PageError::MismatchedCursor);
        }
        let (limit, cursor, backward) = match (self.first, self.last) {
            (Some(_), Some(_)) => return Err(PageError::BothFirstAndLast),
            (None, None) => return Err(PageError::MissingFirstOrLast),
            (Some(n), None) => (check("first", n)?, self.after.as_deref(), false),
            (None, Some(n)) => (check("last", n)?, self.before.as_deref(), true),
        };
        let cursor = cursor.map(Cursor::decode).transpose()?;
        if let Some(c) = &cursor
            && c.sort != sort
        {
            return Err(PageError::CursorSortMismatch);
        }
        Ok(Page {
            limit,
            cursor,
            backward,
        })
    }
}

/// One page of rows plus what Relay's `pageInfo` needs.
#[derive(Debug, Clone)]
pub struct PageOf<T> {
    pub rows: Vec<T>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
}

impl<T> PageOf<T> {
    /// Trims the probe row and restores the client's order for a backward page.
    pub fn from_probe(mut rows: Vec<T>, page: &Page) -> Self {
        let more = rows.len() > page.limit;
        rows.truncate(page.limit);
        if page.backward {
            rows.reverse();
        }
        let (has_next_page, has_previous_page) = if page.backward {
            (page.cursor.is_some(), more)
        } else {
            (more, page.cursor.is_some())
        };
        Self {
            rows,
            has_next_page,
            has_previous_page,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor::new("TITLE", serde_json::json!("Blue shirt"), 42);
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert_eq!(Cursor::decode("not base64!"), Err(PageError::InvalidCursor));
        assert_eq!(Cursor::decode("e30"), Err(PageError::InvalidCursor));
    }

    #[test]
    fn page_arguments_are_validated() {
        let args = |first, last| PageArgs {
            first,
            last,
            ..Default::default()
        };
        assert_eq!(
            args(None, None).validate("ID", 250),
            Err(PageError::MissingFirstOrLast)
        );
        assert_eq!(
            args(Some(1), Some(1)).validate("ID", 250),
            Err(PageError::BothFirstAndLast)
        );
        assert!(args(Some(251), None).validate("ID", 250).is_err());
        assert!(args(Some(-1), None).validate("ID", 250).is_err());
        let other = PageArgs {
            first: Some(2),
            after: Some(Cursor::new("TITLE", serde_json::Value::Null, 1).encode()),
            ..Default::default()
        };
        assert_eq!(
            other.validate("ID", 250),
            Err(PageError::CursorSortMismatch)
        );
        assert!(args(None, Some(5)).validate("ID", 250).unwrap().backward);
        let mixed = PageArgs {
            first: Some(2),
            before: Some("x".into()),
            ..Default::default()
        };
        assert_eq!(mixed.validate("ID", 250), Err(PageError::MismatchedCursor));
    }
}
