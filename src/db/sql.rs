//! A small builder for the statements diesel's query builder cannot express (listings
//! with optional filters and keyset cursors, `LATERAL` "first N per parent" reads).
//! Values always travel as bind parameters; only fixed fragments chosen by the code are
//! spliced into the text.
//!
//! Unlike diesel's `sql_query`, whose statements are prepared and planned anew on every
//! execution, a [`DynSql`] is a prepared statement cached per connection by its text. The
//! hot read paths therefore skip planning and a round trip. Statements whose text depends
//! on client input (search expressions) opt out with [`DynSql::uncached`], so clients
//! cannot fill the cache with shapes of their own.

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Double, Int4, Text, Untyped};

#[derive(Debug, Clone)]
pub enum Bind {
    Text(String),
    BigInt(i64),
    BigIntArray(Vec<i64>),
    Int(i32),
    Float(f64),
}

#[derive(Debug, Clone, Default)]
pub struct DynSql {
    sql: String,
    binds: Vec<Bind>,
    /// Do not keep a prepared statement for this text.
    uncached: bool,
}

impl DynSql {
    pub fn new(sql: &str) -> Self {
        Self {
            sql: sql.to_string(),
            binds: Vec::new(),
            uncached: false,
        }
    }

    /// Marks the statement as shaped by client input: it is not kept prepared.
    pub fn uncached(&mut self) -> &mut Self {
        self.uncached = true;
        self
    }

    /// Whether the statement is shaped by client input (see [`DynSql::uncached`]).
    pub fn is_uncached(&self) -> bool {
        self.uncached
    }

    /// Appends fixed SQL text.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder for `value` and returns its text (`$n`) for reuse.
    pub fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        let placeholder = format!("${}", self.binds.len());
        self.sql.push_str(&placeholder);
        placeholder
    }

    /// Registers `value` and returns its placeholder without writing it, for text that
    /// uses the same value several times.
    pub fn add(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    /// Embeds this statement in `before{value}middle{self}after`, binding `value` after
    /// this statement's own parameters.
    pub fn wrap(self, before: &str, middle: &str, after: &str, value: Bind) -> DynSql {
        let mut binds = self.binds;
        binds.push(value);
        DynSql {
            sql: format!("{before}${}{middle}{}{after}", binds.len(), self.sql),
            binds,
            uncached: self.uncached,
        }
    }
}

impl QueryFragment<Pg> for DynSql {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        if self.uncached {
            out.unsafe_to_cache_prepared();
        }
        // The placeholders are already in the text: register the values only.
        out.push_sql(&self.sql);
        for bind in &self.binds {
            match bind {
                Bind::Text(v) => out.push_bind_param_value_only::<Text, _>(v)?,
                Bind::BigInt(v) => out.push_bind_param_value_only::<BigInt, _>(v)?,
                Bind::BigIntArray(v) => out.push_bind_param_value_only::<Array<BigInt>, _>(v)?,
                Bind::Int(v) => out.push_bind_param_value_only::<Int4, _>(v)?,
                Bind::Float(v) => out.push_bind_param_value_only::<Double, _>(v)?,
            }
        }
        Ok(())
    }
}

/// No static id: the cache key is the statement's text and bind types.
impl QueryId for DynSql {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for DynSql {
    type SqlType = Untyped;
}

/// A statement with fixed text (a `diesel::sql_query` with its binds, say) kept prepared
/// per connection like a [`DynSql`]: diesel plans every `sql_query` anew, which cost the
/// checkout's raw statements a parse and a plan on every order. Only for text written in
/// the code, never text shaped by a client.
pub struct Prepared<Q>(pub Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

/// No static id: the cache key is the statement's text and bind types.
impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}
