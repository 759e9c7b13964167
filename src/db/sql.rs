//! A small builder for the few statements whose shape depends on the request (listings
//! with optional filters, sort keys and keyset cursors). Everything else uses diesel's
//! query builder. Values always travel as bind parameters; only fixed fragments chosen by
//! the code are spliced into the text.

use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Array, BigInt, Bool, Double, Int4, Text};

#[derive(Debug, Clone)]
pub enum Bind {
    Text(String),
    TextArray(Vec<String>),
    BigInt(i64),
    BigIntArray(Vec<i64>),
    Int(i32),
    Float(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Default)]
pub struct DynSql {
    sql: String,
    binds: Vec<Bind>,
}

impl DynSql {
    pub fn new(sql: &str) -> Self {
        Self {
            sql: sql.to_string(),
            binds: Vec::new(),
        }
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

    pub fn text(&self) -> &str {
        &self.sql
    }

    pub fn into_query(self) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
        let mut query = diesel::sql_query(self.sql).into_boxed::<Pg>();
        for bind in self.binds {
            query = match bind {
                Bind::Text(v) => query.bind::<Text, _>(v),
                Bind::TextArray(v) => query.bind::<Array<Text>, _>(v),
                Bind::BigInt(v) => query.bind::<BigInt, _>(v),
                Bind::BigIntArray(v) => query.bind::<Array<BigInt>, _>(v),
                Bind::Int(v) => query.bind::<Int4, _>(v),
                Bind::Float(v) => query.bind::<Double, _>(v),
                Bind::Bool(v) => query.bind::<Bool, _>(v),
            };
        }
        query
    }
}
