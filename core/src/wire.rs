//! Strict JSON shapes. serde's derived `Deserialize` for a struct also accepts a JSON array of
//! its fields in order (`["flat", 500]` for a reward): the API contract says objects, so nested
//! structs are read through these helpers, which refuse anything but a JSON object.

use serde::de::{DeserializeOwned, Error, Unexpected};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

fn unexpected(v: &Value) -> Unexpected<'_> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(_) => Unexpected::Other("number"),
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

fn from_object<T: DeserializeOwned, E: Error>(v: Value) -> Result<T, E> {
    if !v.is_object() {
        return Err(E::invalid_type(unexpected(&v), &"a JSON object"));
    }
    T::deserialize(v).map_err(E::custom)
}

/// A required nested object.
pub fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
    from_object(Value::deserialize(d)?)
}

/// An optional nested object (`null` or absent with `#[serde(default)]` = `None`).
pub fn opt_object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v => from_object(v).map(Some),
    }
}

/// A nullable nested object in a PATCH: absent (with `#[serde(default)]`) = `None`, `null` =
/// `Some(None)` (clear it), an object = `Some(Some(..))`.
pub fn nullable_object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<Option<T>>, D::Error> {
    opt_object(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        a: i64,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[serde(default, deserialize_with = "opt_object")]
        inner: Option<Inner>,
        #[serde(default, deserialize_with = "nullable_object")]
        patch: Option<Option<Inner>>,
    }

    #[test]
    fn objects_only() {
        let o: Outer = serde_json::from_str(r#"{"inner":{"a":1},"patch":null}"#).unwrap();
        assert_eq!(o.inner, Some(Inner { a: 1 }));
        assert_eq!(o.patch, Some(None));
        let o: Outer = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!((o.inner, o.patch), (None, None));
        assert!(serde_json::from_str::<Outer>(r#"{"inner":[1]}"#).is_err());
        assert!(serde_json::from_str::<Outer>(r#"{"patch":[1]}"#).is_err());
        assert!(serde_json::from_str::<Outer>(r#"{"inner":"x"}"#).is_err());
        assert!(serde_json::from_str::<Outer>(r#"{"inner":{"a":1,"b":2}}"#).is_err());
    }
}
