//! Typed attributes: static keys without allocation, and values of five types.

use std::borrow::Cow;
use std::fmt;

use smallvec::SmallVec;

/// An attribute key. `&'static str` keys are stored without allocating.
pub type Key = Cow<'static, str>;

/// Attributes stored inline: up to 8 need no heap allocation.
pub type Attributes = SmallVec<[KeyValue; 8]>;

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer (exported as a signed integer when it fits, as a string otherwise).
    U64(u64),
    /// A float.
    F64(f64),
    /// A string; `&'static str` values are stored without allocating.
    Str(Cow<'static, str>),
}

/// One attribute.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyValue {
    /// The key, an OpenTelemetry semantic-convention name where one exists.
    pub key: Key,
    /// The value.
    pub value: Value,
}

impl KeyValue {
    /// A key-value pair.
    ///
    /// # Examples
    /// ```
    /// use rustmon_core::{KeyValue, Value};
    /// let kv = KeyValue::new("http.response.status_code", 200_i64);
    /// assert_eq!(kv.value, Value::I64(200));
    /// ```
    pub fn new(key: impl Into<Key>, value: impl Into<Value>) -> Self {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}

impl Value {
    /// The value as a string slice, when it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an `i64`, when it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I64(v) => Some(v),
            Value::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Shortens a string value to at most `max` bytes, on a character boundary.
    pub(crate) fn truncate(&mut self, max: usize) {
        if let Value::Str(s) = self {
            if s.len() > max {
                let mut end = max;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                match s {
                    Cow::Borrowed(b) => *b = &b[..end],
                    Cow::Owned(o) => o.truncate(end),
                }
            }
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(v) => v.fmt(f),
            Value::I64(v) => v.fmt(f),
            Value::U64(v) => v.fmt(f),
            Value::F64(v) => v.fmt(f),
            Value::Str(v) => v.fmt(f),
        }
    }
}

macro_rules! from_value {
    ($($t:ty => $variant:ident as $as:ty),* $(,)?) => {$(
        impl From<$t> for Value {
            #[inline]
            fn from(v: $t) -> Self {
                Value::$variant(v as $as)
            }
        }
    )*};
}

from_value!(
    bool => Bool as bool,
    i64 => I64 as i64, i32 => I64 as i64, i16 => I64 as i64, i8 => I64 as i64,
    u64 => U64 as u64, u32 => U64 as u64, u16 => U64 as u64, u8 => U64 as u64, usize => U64 as u64,
    f64 => F64 as f64, f32 => F64 as f64,
);

impl From<&'static str> for Value {
    #[inline]
    fn from(v: &'static str) -> Self {
        Value::Str(Cow::Borrowed(v))
    }
}

impl From<String> for Value {
    #[inline]
    fn from(v: String) -> Self {
        Value::Str(Cow::Owned(v))
    }
}

impl From<Cow<'static, str>> for Value {
    #[inline]
    fn from(v: Cow<'static, str>) -> Self {
        Value::Str(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_char_boundaries() {
        let mut v = Value::from(String::from("héllo"));
        v.truncate(2);
        assert_eq!(v.as_str(), Some("h"));
        let mut v = Value::from("hello");
        v.truncate(3);
        assert_eq!(v.as_str(), Some("hel"));
    }
}
