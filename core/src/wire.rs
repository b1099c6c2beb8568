//! Typed JSON, read from a `serde_json::Value`. Every typed JSON of the Worker (request bodies,
//! stored JSON columns, queue messages, KV entries, Stripe's answers) is parsed once into a
//! `Value` and read into its type by [`FromJson`]; structs through [`from_json!`], which reads an
//! object field by field: no serde visitor per type, no field-name visitor, no sequence form
//! (the API contract says objects; serde's derive also reads a struct from an array of its
//! fields). serde's derived readers were ~26 KB of the gzipped wasm; these are a few KB.
//!
//! The messages are serde's (`missing field `x``, `unknown field `x`, expected one of ..`,
//! `invalid type: integer `1`, expected a string`), built by the same `serde::de::Error`
//! constructors, and a property test holds this reader to serde_json's derived one. One
//! difference: of several problems in one object, serde reports the first in key order, this
//! reader an unknown key first, then the first field in declaration order.

use serde::de::Error as _;
use std::collections::BTreeMap;

pub use serde_json::{Map, Value};

/// What a failed read says (serde_json's error type, so `?` and `Display` work as before).
pub type Error = serde_json::Error;

/// A type read from a JSON value.
pub trait FromJson: Sized {
    fn from_json(v: Value) -> Result<Self, Error>;

    /// What a field the object does not have reads as; `None`: the field is required.
    fn absent() -> Option<Self> {
        None
    }
}

/// Parses JSON text into `T`.
pub fn from_text<T: FromJson>(text: &[u8]) -> Result<T, Error> {
    T::from_json(serde_json::from_slice(text)?)
}

/// Parses JSON text into `T`.
pub fn from_str<T: FromJson>(text: &str) -> Result<T, Error> {
    from_text(text.as_bytes())
}

/// `T` from a `Value`.
pub fn from_value<T: FromJson>(v: Value) -> Result<T, Error> {
    T::from_json(v)
}

/// What `v` is, as serde's `Unexpected` says it (`integer `1``, `string "x"`, `map`). Written
/// here rather than through `Unexpected`, whose `Display` formats floats with core's float
/// formatting (~6 KB of wasm); a float is written by serde_json's own formatter.
fn what(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) if n.is_f64() => format!("floating point `{n}`"),
        Value::Number(n) => format!("integer `{n}`"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "sequence".into(),
        Value::Object(_) => "map".into(),
    }
}

/// `invalid type: <what v is>, expected <expected>`.
pub fn invalid_type(v: &Value, expected: &str) -> Error {
    Error::custom(format_args!("invalid type: {}, expected {expected}", what(v)))
}

/// The object a struct is read from; anything else is refused as `expected` (`struct Name`).
pub fn object(v: Value, expected: &str) -> Result<Map<String, Value>, Error> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(invalid_type(&other, expected)),
    }
}

/// A struct's fields, taken out of its object one by one (by [`from_json!`]).
pub struct Fields {
    names: &'static [&'static str],
    values: Vec<Option<Value>>,
}

/// The object `v` as the fields `names` of a struct; anything but an object is refused as
/// `expected` (`struct Name`). An unknown key is refused when `strict` (`deny_unknown_fields`),
/// else skipped.
pub fn fields(v: Value, expected: &str, names: &'static [&'static str], strict: bool) -> Result<Fields, Error> {
    let mut values: Vec<Option<Value>> = names.iter().map(|_| None).collect();
    for (k, v) in object(v, expected)? {
        match names.iter().position(|f| *f == k) {
            Some(i) => values[i] = Some(v),
            None if strict => return Err(Error::unknown_field(&k, names)),
            None => {}
        }
    }
    Ok(Fields { names, values })
}

impl Fields {
    fn value(&mut self, name: &str) -> Option<Value> {
        let i = self.names.iter().position(|f| *f == name)?;
        self.values.get_mut(i)?.take()
    }

    /// A field: absent reads as [`FromJson::absent`], else `missing field`.
    #[inline(never)]
    pub fn take<T: FromJson>(&mut self, name: &'static str) -> Result<T, Error> {
        match self.value(name) {
            Some(v) => T::from_json(v),
            None => absent(name),
        }
    }

    /// A field that reads as `or()` when absent.
    #[inline(never)]
    pub fn or<T: FromJson>(&mut self, name: &'static str, or: impl FnOnce() -> T) -> Result<T, Error> {
        self.value(name).map_or_else(|| Ok(or()), T::from_json)
    }

    /// A nullable field of a PATCH: absent = `None` (unchanged), `null` = `Some(None)` (clear
    /// it), a value = `Some(Some(..))`.
    #[inline(never)]
    pub fn nullable<T: FromJson>(&mut self, name: &'static str) -> Result<Option<Option<T>>, Error> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => T::from_json(v).map(|t| Some(Some(t))),
        }
    }
}

/// A field the object does not have: [`FromJson::absent`], else `missing field`.
pub fn absent<T: FromJson>(name: &'static str) -> Result<T, Error> {
    T::absent().ok_or_else(|| Error::missing_field(name))
}

/// The index in `names` of a unit variant given as its name (`rename_all = "snake_case"`).
pub fn variant(v: Value, names: &[&str]) -> Result<usize, Error> {
    match &v {
        Value::String(s) => names.iter().position(|n| n == s).ok_or_else(|| {
            let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            let expected = match list.len() {
                0 => "there are no variants".to_string(),
                1 => format!("expected {}", list[0]),
                2 => format!("expected {} or {}", list[0], list[1]),
                _ => format!("expected one of {}", list.join(", ")),
            };
            Error::custom(format_args!("unknown variant `{s}`, {expected}"))
        }),
        _ => Err(invalid_type(&v, "a string")),
    }
}

/// A struct and its `FromJson`, field by field:
///
/// ```ignore
/// from_json! {
///     deny_unknown_fields
///     /// The body of `POST /things`.
///     #[derive(Debug)]
///     pub struct NewThing {
///         pub name: String,
///         pub kind as "type": Kind,
///         pub tags: Vec<String> = default,
///         pub days: u32 = or(DEFAULT_DAYS),
///         pub logo_url: Option<Option<String>> = nullable,
///     }
/// }
/// ```
///
/// A leading `deny_unknown_fields` refuses unknown keys (else they are skipped). A field is read
/// from its name or `as "wire_name"`; `= default` reads an absent field as `Default::default()`,
/// `= or(expr)` as `expr`, `= nullable` is a PATCH's `Option<Option<T>>` (see
/// [`Fields::nullable`]); an `Option` field may be absent. Attributes (docs, derives, serde's for
/// `Serialize`) pass through. Unknown keys are refused first, then the fields are read in their
/// declaration order (the first error wins).
#[macro_export]
macro_rules! from_json {
    (@name $f:ident) => { stringify!($f) };
    (@name $f:ident $name:literal) => { $name };
    (@take $o:ident $name:expr) => { $o.take($name) };
    (@take $o:ident $name:expr, default) => { $o.or($name, ::core::default::Default::default) };
    (@take $o:ident $name:expr, or($d:expr)) => { $o.or($name, || $d) };
    (@take $o:ident $name:expr, nullable) => { $o.nullable($name) };
    (@struct $strict:literal
        $(#[$meta:meta])* $vis:vis struct $ty:ident {
            $($(#[$fmeta:meta])* $fvis:vis $f:ident $(as $name:literal)? : $t:ty $(= $mode:ident $(($d:expr))?)?),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $ty {
            $($(#[$fmeta])* $fvis $f: $t,)*
        }

        impl $crate::wire::FromJson for $ty {
            fn from_json(v: $crate::wire::Value) -> ::core::result::Result<Self, $crate::wire::Error> {
                const FIELDS: &[&str] = &[$($crate::from_json!(@name $f $($name)?)),*];
                let mut o = $crate::wire::fields(v, concat!("struct ", stringify!($ty)), FIELDS, $strict)?;
                Ok($ty {
                    $($f: $crate::from_json!(@take o $crate::from_json!(@name $f $($name)?) $(, $mode $(($d))?)?)?,)*
                })
            }
        }
    };
    (deny_unknown_fields $($rest:tt)*) => { $crate::from_json!(@struct true $($rest)*); };
    ($(#[$meta:meta])* $vis:vis struct $($rest:tt)*) => { $crate::from_json!(@struct false $(#[$meta])* $vis struct $($rest)*); };
}

/// `FromJson` for a unit enum, by each variant's wire name:
/// `from_json_enum!(Match { All = "all", Any = "any" })`.
#[macro_export]
macro_rules! from_json_enum {
    ($ty:ident { $($v:ident = $name:literal),* $(,)? }) => {
        impl $crate::wire::FromJson for $ty {
            fn from_json(v: $crate::wire::Value) -> ::core::result::Result<Self, $crate::wire::Error> {
                const ALL: &[$ty] = &[$($ty::$v),*];
                $crate::wire::variant(v, &[$($name),*]).map(|i| ALL[i])
            }
        }
    };
}

impl FromJson for Value {
    fn from_json(v: Value) -> Result<Self, Error> {
        Ok(v)
    }
}

impl FromJson for String {
    fn from_json(v: Value) -> Result<Self, Error> {
        match v {
            Value::String(s) => Ok(s),
            other => Err(invalid_type(&other, "a string")),
        }
    }
}

impl FromJson for bool {
    fn from_json(v: Value) -> Result<Self, Error> {
        match v {
            Value::Bool(b) => Ok(b),
            other => Err(invalid_type(&other, "a boolean")),
        }
    }
}

impl FromJson for f64 {
    fn from_json(v: Value) -> Result<Self, Error> {
        match &v {
            Value::Number(n) => n.as_f64().ok_or_else(|| invalid_type(&v, "f64")),
            _ => Err(invalid_type(&v, "f64")),
        }
    }
}

/// A number that is not a `T`: out of range (`invalid value: integer `-1`, expected u16`) or not
/// an integer (`invalid type: floating point `1.5`, expected i64`).
fn not_integer(v: &Value, expected: &str) -> Error {
    if v.is_i64() || v.is_u64() {
        Error::custom(format_args!("invalid value: {}, expected {expected}", what(v)))
    } else {
        invalid_type(v, expected)
    }
}

macro_rules! integers {
    ($($t:ident)*) => {$(
        impl FromJson for $t {
            fn from_json(v: Value) -> Result<Self, Error> {
                let i = v.as_i64().and_then(|i| $t::try_from(i).ok());
                i.or_else(|| v.as_u64().and_then(|u| $t::try_from(u).ok())).ok_or_else(|| not_integer(&v, stringify!($t)))
            }
        }
    )*};
}

integers!(u8 u16 u32 u64 i32 i64);

impl<T: FromJson> FromJson for Option<T> {
    fn from_json(v: Value) -> Result<Self, Error> {
        match v {
            Value::Null => Ok(None),
            v => T::from_json(v).map(Some),
        }
    }

    fn absent() -> Option<Self> {
        Some(None)
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    fn from_json(v: Value) -> Result<Self, Error> {
        match v {
            Value::Array(a) => a.into_iter().map(T::from_json).collect(),
            other => Err(invalid_type(&other, "a sequence")),
        }
    }
}

impl FromJson for Map<String, Value> {
    fn from_json(v: Value) -> Result<Self, Error> {
        object(v, "a map")
    }
}

impl<T: FromJson> FromJson for BTreeMap<String, T> {
    fn from_json(v: Value) -> Result<Self, Error> {
        object(v, "a map")?.into_iter().map(|(k, v)| Ok((k, T::from_json(v)?))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::{Deserialize, Deserializer};

    // The reader against serde_json's derived one: `Theirs` (serde derive) and `Ours`
    // (`from_json!`) are the same shape with every kind of field.

    #[derive(Debug, Deserialize, PartialEq, Clone, Copy)]
    #[serde(rename_all = "snake_case")]
    enum Unit {
        LastClick,
        FirstClick,
        Other,
    }
    crate::from_json_enum!(Unit { LastClick = "last_click", FirstClick = "first_click", Other = "other" });

    crate::from_json! {
        deny_unknown_fields
        #[derive(Debug, Deserialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Inner {
            a: i64,
            b: Option<String>,
        }
    }

    fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }

    fn seven() -> u32 {
        7
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Theirs {
        id: String,
        #[serde(rename = "type")]
        kind: Unit,
        n: Option<u16>,
        small: u8,
        big: i64,
        #[serde(default)]
        flag: bool,
        #[serde(default)]
        tags: Vec<String>,
        inner: Option<Inner>,
        #[serde(default, deserialize_with = "nullable")]
        patch: Option<Option<i32>>,
        #[serde(default = "seven")]
        days: u32,
        ratio: Option<f64>,
        meta: Option<Map<String, Value>>,
    }

    crate::from_json! {
        deny_unknown_fields
        #[derive(Debug, PartialEq)]
        struct Ours {
            id: String,
            kind as "type": Unit,
            n: Option<u16>,
            small: u8,
            big: i64,
            flag: bool = default,
            tags: Vec<String> = default,
            inner: Option<Inner>,
            patch: Option<Option<i32>> = nullable,
            days: u32 = or(seven()),
            ratio: Option<f64>,
            meta: Option<Map<String, Value>>,
        }
    }

    /// A skipping (not strict) struct: unknown keys are ignored, as serde's default.
    #[derive(Debug, Deserialize, PartialEq)]
    struct Lax {
        id: String,
        n: Option<u32>,
    }
    crate::from_json! {
        #[derive(Debug, PartialEq)]
        struct LaxOurs {
            id: String,
            n: Option<u32>,
        }
    }

    fn same(t: Theirs) -> Ours {
        let Theirs { id, kind, n, small, big, flag, tags, inner, patch, days, ratio, meta } = t;
        Ours { id, kind, n, small, big, flag, tags, inner, patch, days, ratio, meta }
    }

    fn base() -> Map<String, Value> {
        let v = serde_json::json!({"id": "x", "type": "last_click", "small": 3, "big": -5});
        v.as_object().cloned().unwrap_or_default()
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (0i64..300).prop_map(Value::from),
            (-70_000i64..70_000).prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            prop::sample::select(vec!["last_click", "first_click", "other", "x", "a", ""]).prop_map(Value::from),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        let keys = prop::sample::select(vec!["a", "b", "c", "id"]);
        leaf().prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map(keys.clone().prop_map(String::from), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const KEYS: [&str; 14] =
        ["id", "type", "n", "small", "big", "flag", "tags", "inner", "patch", "days", "ratio", "meta", "zz", "kind"];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// One key of a valid object changed (set to any value, or removed): the reader accepts
        /// what serde_json's derived reader accepts, with the same value, and refuses the rest
        /// with the same message; except a struct given as an array (serde reads a struct from
        /// an array of its fields; the API says objects).
        #[test]
        fn one_change_reads_as_serde_reads(key in prop::sample::select(KEYS.to_vec()), v in prop::option::of(value())) {
            let mut m = base();
            match v.clone() {
                Some(v) => { m.insert(key.to_string(), v); }
                None => { m.remove(key); }
            }
            let j = Value::Object(m);
            let theirs = serde_json::from_value::<Theirs>(j.clone());
            let ours = from_value::<Ours>(j.clone());
            // serde also reads a struct from an array of its fields and a unit variant from
            // `{"name": null}`; the API says objects and names.
            let array_for_struct = key == "inner" && matches!(v, Some(Value::Array(_)));
            let not_a_name = key == "type" && !matches!(v, Some(Value::String(_)) | None);
            match (theirs, ours) {
                (Ok(a), Ok(b)) => prop_assert_eq!(same(a), b),
                // A nested object can have several problems; serde reports the first in key
                // order, this reader unknown keys first, then fields in declaration order.
                (Err(a), Err(b)) if key != "inner" && !not_a_name => prop_assert_eq!(a.to_string(), b.to_string(), "{}", j),
                (Err(_), Err(_)) => {}
                (Ok(_), Err(e)) => prop_assert!(array_for_struct || not_a_name, "refused {j}: {e}"),
                (Err(e), Ok(_)) => prop_assert!(false, "accepted {j} which serde_json refuses: {e}"),
            }
        }

        /// Any value at all: accepted exactly when serde_json accepts it (arrays for structs
        /// aside), and then the same; a non-strict struct skips what it does not know.
        #[test]
        fn any_value_accepted_as_serde_accepts(v in value(), extra in prop::collection::btree_map(
            prop::sample::select(KEYS.to_vec()).prop_map(String::from), value(), 0..6)) {
            let mut m = base();
            m.extend(extra);
            for j in [v.clone(), Value::Object(m)] {
                let theirs = serde_json::from_value::<Theirs>(j.clone()).ok();
                let ours = from_value::<Ours>(j.clone()).ok();
                let inner_array = j.get("inner").is_some_and(Value::is_array);
                let type_object = j.get("type").is_some_and(Value::is_object);
                if !(inner_array || type_object || j.is_array()) {
                    prop_assert_eq!(theirs.map(same), ours, "{}", j);
                }
                let lax_theirs = serde_json::from_value::<Lax>(j.clone()).ok().map(|l| LaxOurs { id: l.id, n: l.n });
                if !j.is_array() {
                    prop_assert_eq!(lax_theirs, from_value::<LaxOurs>(j.clone()).ok(), "{}", j);
                }
            }
        }
    }

    #[test]
    fn messages() {
        let err = |j: Value| from_value::<Ours>(j).unwrap_err().to_string();
        let with = |k: &str, v: Value| {
            let mut m = base();
            m.insert(k.into(), v);
            Value::Object(m)
        };
        assert_eq!(err(Value::from("x")), "invalid type: string \"x\", expected struct Ours");
        assert_eq!(err(with("zz", Value::Null)).split(", expected").next(), Some("unknown field `zz`"));
        let mut m = base();
        m.remove("id");
        assert_eq!(err(Value::Object(m)), "missing field `id`");
        assert_eq!(err(with("small", Value::from(256))), "invalid value: integer `256`, expected u8");
        assert_eq!(err(with("big", Value::from(1.5))), "invalid type: floating point `1.5`, expected i64");
        assert_eq!(
            err(with("big", Value::from(u64::MAX))),
            format!("invalid value: integer `{}`, expected i64", u64::MAX)
        );
        assert_eq!(
            err(with("type", Value::from("nope"))),
            "unknown variant `nope`, expected one of `last_click`, `first_click`, `other`"
        );
        assert_eq!(err(with("inner", serde_json::json!([1]))), "invalid type: sequence, expected struct Inner");
        assert_eq!(err(with("tags", Value::from("a"))), "invalid type: string \"a\", expected a sequence");
        assert_eq!(err(with("inner", serde_json::json!({"a": 1, "c": 2}))), "unknown field `c`, expected `a` or `b`");
        // Absent, null and a value of a PATCH's nullable field.
        let o = from_value::<Ours>(Value::Object(base())).unwrap();
        assert_eq!((o.patch, o.days, o.flag, o.tags.len()), (None, 7, false, 0));
        assert_eq!(from_value::<Ours>(with("patch", Value::Null)).unwrap().patch, Some(None));
        assert_eq!(from_value::<Ours>(with("patch", Value::from(4))).unwrap().patch, Some(Some(4)));
        // Text in, and the JSON syntax error out.
        assert!(from_text::<Value>(b"{").unwrap_err().to_string().starts_with("EOF while parsing"));
        assert_eq!(from_text::<BTreeMap<String, u32>>(br#"{"a":1}"#).unwrap().get("a"), Some(&1));
    }
}
