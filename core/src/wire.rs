//! Strict JSON shapes. serde's derived `Deserialize` for a struct also accepts a JSON array of
//! its fields in order (`["flat", 500]` for a reward): the API contract says objects. Every typed
//! JSON of the Worker (request bodies, stored JSON columns, queue messages, Stripe's answers) is
//! read from a `Value` through [`Strict`], which gives structs objects only, so a derived
//! deserializer exists once in the wasm (for one deserializer) and without its sequence form
//! (the array reading of each struct was ~35 KB of the wasm). The helpers below still refuse a
//! non-object where a field holds a nested struct behind a custom `deserialize_with`.

use serde::de::value::StringDeserializer;
use serde::de::{
    DeserializeOwned, DeserializeSeed, EnumAccess, Error, IntoDeserializer, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};
use serde::{forward_to_deserialize_any, Deserialize, Deserializer};
use serde_json::Value;

type JsonError = serde_json::Error;

/// Parses JSON text into `T` (through a `Value`, read by [`Strict`]).
pub fn from_text<T: DeserializeOwned>(text: &[u8]) -> serde_json::Result<T> {
    from_value(serde_json::from_slice(text)?)
}

/// `T` from a `Value`, structs from objects only (`serde_json::from_value` with that one change;
/// the same error messages otherwise).
pub fn from_value<T: DeserializeOwned>(v: Value) -> serde_json::Result<T> {
    T::deserialize(Strict(v))
}

/// A `Value` as a deserializer that gives structs (and struct variants) objects only.
pub struct Strict(pub Value);

fn key(k: String) -> StringDeserializer<JsonError> {
    k.into_deserializer()
}

fn visit_array<'de, V: Visitor<'de>>(a: Vec<Value>, v: V) -> Result<V::Value, JsonError> {
    let len = a.len();
    let mut seq = Seq(a.into_iter());
    let out = v.visit_seq(&mut seq)?;
    if seq.0.len() == 0 {
        Ok(out)
    } else {
        Err(JsonError::invalid_length(len, &"fewer elements in array"))
    }
}

fn visit_object<'de, V: Visitor<'de>>(m: serde_json::Map<String, Value>, v: V) -> Result<V::Value, JsonError> {
    let len = m.len();
    let mut map = Entries { iter: m.into_iter(), value: None };
    let out = v.visit_map(&mut map)?;
    if map.iter.len() == 0 {
        Ok(out)
    } else {
        Err(JsonError::invalid_length(len, &"fewer elements in map"))
    }
}

impl<'de> Deserializer<'de> for Strict {
    type Error = JsonError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, JsonError> {
        match self.0 {
            Value::Null => v.visit_unit(),
            Value::Bool(b) => v.visit_bool(b),
            Value::Number(n) => n.deserialize_any(v),
            Value::String(s) => v.visit_string(s),
            Value::Array(a) => visit_array(a, v),
            Value::Object(m) => visit_object(m, v),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, JsonError> {
        match self.0 {
            Value::Null => v.visit_none(),
            other => v.visit_some(Strict(other)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, JsonError> {
        match self.0 {
            Value::Object(m) => visit_object(m, v),
            other => Err(JsonError::invalid_type(unexpected(&other), &v)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, v: V) -> Result<V::Value, JsonError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, JsonError> {
        match self.0 {
            Value::String(variant) => v.visit_enum(Variant { variant, value: None }),
            Value::Object(m) => {
                let mut it = m.into_iter();
                match (it.next(), it.next()) {
                    (Some((variant, value)), None) => v.visit_enum(Variant { variant, value: Some(value) }),
                    _ => Err(JsonError::invalid_value(Unexpected::Map, &"map with a single key")),
                }
            }
            other => Err(JsonError::invalid_type(unexpected(&other), &"string or map")),
        }
    }

    /// Variant and field names are strings only (serde_json's rule: no variant by index).
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, JsonError> {
        match self.0 {
            Value::String(s) => v.visit_string(s),
            other => Err(JsonError::invalid_type(unexpected(&other), &v)),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map ignored_any
    }
}

struct Seq(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for Seq {
    type Error = JsonError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, JsonError> {
        self.0.next().map(|v| seed.deserialize(Strict(v))).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries {
    iter: serde_json::map::IntoIter,
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for Entries {
    type Error = JsonError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, JsonError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(key(k)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, JsonError> {
        match self.value.take() {
            Some(v) => seed.deserialize(Strict(v)),
            None => Err(JsonError::custom("value is missing")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct Variant {
    variant: String,
    value: Option<Value>,
}

impl<'de> EnumAccess<'de> for Variant {
    type Error = JsonError;
    type Variant = Content;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Content), JsonError> {
        Ok((seed.deserialize(key(self.variant))?, Content(self.value)))
    }
}

/// A variant's content: none for `"variant"`, the value for `{"variant": value}`.
struct Content(Option<Value>);

impl<'de> VariantAccess<'de> for Content {
    type Error = JsonError;

    fn unit_variant(self) -> Result<(), JsonError> {
        match self.0 {
            None => Ok(()),
            Some(v) => <()>::deserialize(Strict(v)),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, JsonError> {
        match self.0 {
            Some(v) => seed.deserialize(Strict(v)),
            None => Err(JsonError::invalid_type(Unexpected::UnitVariant, &"newtype variant")),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, JsonError> {
        match self.0 {
            Some(Value::Array(a)) if a.is_empty() => v.visit_unit(),
            Some(Value::Array(a)) => visit_array(a, v),
            Some(other) => Err(JsonError::invalid_type(unexpected(&other), &"tuple variant")),
            None => Err(JsonError::invalid_type(Unexpected::UnitVariant, &"tuple variant")),
        }
    }

    fn struct_variant<V: Visitor<'de>>(self, _fields: &'static [&'static str], v: V) -> Result<V::Value, JsonError> {
        match self.0 {
            Some(Value::Object(m)) => visit_object(m, v),
            Some(other) => Err(JsonError::invalid_type(unexpected(&other), &"struct variant")),
            None => Err(JsonError::invalid_type(Unexpected::UnitVariant, &"struct variant")),
        }
    }
}

fn unexpected(v: &Value) -> Unexpected<'_> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Unexpected::Unsigned(u),
            (None, Some(i)) => Unexpected::Signed(i),
            _ => Unexpected::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

fn from_object<T: DeserializeOwned, E: Error>(v: Value) -> Result<T, E> {
    if !v.is_object() {
        return Err(E::invalid_type(unexpected(&v), &"a JSON object"));
    }
    from_value(v).map_err(E::custom)
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
    use proptest::prelude::*;

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

    // ---- Strict against serde_json::from_value ------------------------------------------------

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Flat,
        Percent(u32),
        Range { lo: i64, hi: i64 },
        Pair(i64, i64),
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(tag = "every", rename_all = "snake_case")]
    enum Every {
        Day,
        Week { weekday: u8 },
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(untagged)]
    enum Either {
        N(i64),
        S(String),
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Shape {
        id: String,
        #[serde(default)]
        n: Option<u16>,
        kind: Kind,
        #[serde(default)]
        every: Option<Every>,
        #[serde(default)]
        either: Vec<Either>,
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(default)]
        tags: std::collections::BTreeMap<String, f64>,
        #[serde(default)]
        flag: bool,
    }

    /// An array somewhere in `v` where serde_json would read a struct (so Strict refuses it).
    fn read_as_struct_from_array(v: &Value) -> bool {
        let obj = |v: &Value, k: &str| v.as_object().and_then(|m| m.get(k)).cloned();
        let arr = |v: &Option<Value>| matches!(v, Some(Value::Array(_)));
        !v.is_object()
            || arr(&obj(v, "inner"))
            || arr(&obj(v, "every"))
            || matches!(obj(v, "kind"), Some(Value::Object(m)) if m.get("range").is_some_and(Value::is_array))
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (0u32..70_000).prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            prop::sample::select(vec!["flat", "percent", "range", "pair", "day", "week", "x", "a", "1"])
                .prop_map(Value::from),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        let keys = prop::sample::select(vec![
            "id", "n", "kind", "every", "weekday", "either", "inner", "a", "tags", "flag", "flat", "percent", "range",
            "pair", "lo", "hi", "zz",
        ]);
        leaf().prop_recursive(4, 40, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(keys.clone().prop_map(String::from), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A valid shape with variations, so most cases get past the first field.
    fn shape() -> impl Strategy<Value = Value> {
        (value(), value(), value(), any::<bool>(), prop::option::of(0u32..100)).prop_map(
            |(kind, every, inner, f, n)| {
                let mut m = serde_json::Map::new();
                m.insert("id".into(), Value::from("x"));
                m.insert("kind".into(), kind);
                if f {
                    m.insert("every".into(), every);
                    m.insert("inner".into(), inner);
                }
                if let Some(n) = n {
                    m.insert("n".into(), Value::from(n));
                }
                Value::Object(m)
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Strict reads what serde_json reads, with the same value or the same error, except a
        /// struct given as an array (refused).
        #[test]
        fn strict_is_from_value_without_arrays_for_structs(v in prop_oneof![value(), shape()]) {
            let theirs = serde_json::from_value::<Shape>(v.clone());
            let ours = from_value::<Shape>(v.clone());
            match (&theirs, &ours) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                (Err(a), Err(b)) if !read_as_struct_from_array(&v) => prop_assert_eq!(a.to_string(), b.to_string()),
                (Err(_), Err(_)) => {}
                (Ok(_), Err(_)) => prop_assert!(read_as_struct_from_array(&v), "refused {v}: {ours:?}"),
                (Err(e), Ok(_)) => prop_assert!(false, "accepted {v} which serde_json refuses: {e}"),
            }
        }
    }

    #[test]
    fn strict_shapes() {
        let ok = |j: &str| from_text::<Shape>(j.as_bytes()).unwrap();
        let s = ok(
            r#"{"id":"a","kind":{"range":{"lo":1,"hi":2}},"every":{"every":"week","weekday":3},"either":[1,"x"],"tags":{"k":1.5},"flag":true}"#,
        );
        assert_eq!(s.kind, Kind::Range { lo: 1, hi: 2 });
        assert_eq!(s.every, Some(Every::Week { weekday: 3 }));
        assert_eq!(s.either, vec![Either::N(1), Either::S("x".into())]);
        assert_eq!(ok(r#"{"id":"a","kind":{"pair":[1,2]}}"#).kind, Kind::Pair(1, 2));
        assert_eq!(ok(r#"{"id":"a","kind":{"percent":7}}"#).kind, Kind::Percent(7));
        assert_eq!(ok(r#"{"id":"a","kind":"flat"}"#).kind, Kind::Flat);
        // The struct forms serde_json also reads from arrays are refused.
        for j in
            [r#"["a",null,"flat"]"#, r#"{"id":"a","kind":"flat","inner":[1]}"#, r#"{"id":"a","kind":{"range":[1,2]}}"#]
        {
            assert!(serde_json::from_str::<Shape>(j).is_ok(), "{j}");
            let e = from_text::<Shape>(j.as_bytes()).unwrap_err().to_string();
            assert!(e.starts_with("invalid type: sequence, expected"), "{j}: {e}");
        }
        assert_eq!(
            from_text::<Shape>(br#"{"id":"a","kind":{"flat":null,"x":1}}"#).unwrap_err().to_string(),
            "invalid value: map, expected map with a single key"
        );
        assert_eq!(
            from_text::<Shape>(br#"{"id":"a","kind":"nope"}"#).unwrap_err().to_string(),
            serde_json::from_str::<Shape>(r#"{"id":"a","kind":"nope"}"#)
                .unwrap_err()
                .to_string()
                .split(" at line")
                .next()
                .unwrap()
        );
    }
}
