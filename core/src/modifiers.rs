//! Reward modifiers: conditions on a conversion that change what a reward pays.
//!
//! A reward may carry up to [`MAX_MODIFIERS`] modifiers, each with up to [`MAX_CONDITIONS`]
//! conditions (`{"field", "op", "value"}`) joined by `match` (`all` or `any`) and its own
//! `type` / `amount` / `duration_months`. Of the modifiers whose conditions match a
//! conversion, the one paying the most wins ([`crate::rules::sale_commission`]); none: the
//! reward's base terms.
//!
//! Conditions are stored as sent (`field` and `op` as text, `value` as JSON) and compiled into a
//! [`Test`] both when a reward is validated (any error names its path:
//! `rewards.sale.modifiers[2].conditions[0].op`) and when it is evaluated. A condition that
//! does not compile (impossible for a validated reward) never matches: it fails closed.
//!
//! Fields: `country` (the converting click's, ISO alpha-2), `product_id`, `sale_amount` (minor
//! units of the payout currency: the commission base), `customer_type` (`new`: the customer's
//! first sale, `recurring`: a later one), `event_name`, `metadata.<key>` (the sale's metadata).
//! A field the conversion does not have (no click country, a lead's `product_id`, a metadata
//! key absent) makes its condition false, whatever the op: `neq` and `not_in` included.

use crate::error::Invalid;
use crate::rules::RewardType;
use serde::Serialize;
use serde_json::Value;

/// Most modifiers one reward may carry.
pub const MAX_MODIFIERS: usize = 20;
/// Most conditions one modifier may carry.
pub const MAX_CONDITIONS: usize = 10;
/// Most values in an `in` / `not_in` list.
pub const MAX_LIST: usize = 100;
/// Longest text value (and metadata key).
pub const MAX_TEXT: usize = 255;

/// How a modifier's conditions combine.
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Match {
    #[default]
    All,
    Any,
}

crate::from_json_enum!(Match { All = "all", Any = "any" });

crate::from_json! {
    deny_unknown_fields
    /// One condition, as stored. See [`Condition::compile`].
    #[derive(Serialize, Clone, Debug, PartialEq, Eq)]
    pub struct Condition {
        pub field: String,
        pub op: String,
        pub value: Value,
    }
}

crate::from_json! {
    deny_unknown_fields
    /// One modifier: when its conditions match, the conversion earns its terms instead of the
    /// reward's base terms (if they pay more than every other matching modifier).
    #[derive(Serialize, Clone, Debug, PartialEq, Eq)]
    pub struct Modifier {
        pub conditions: Vec<Condition>,
        #[serde(rename = "match")]
        pub matching as "match": Match = default,
        #[serde(rename = "type")]
        pub kind as "type": RewardType,
        pub amount: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub duration_months: Option<u32>,
    }
}

/// What a condition reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    Country,
    ProductId,
    SaleAmount,
    CustomerType,
    EventName,
    Metadata(String),
}

/// The comparison of a compiled condition.
#[derive(Clone, Debug, PartialEq)]
pub enum Test {
    /// Text equal to one of these (`eq`: one value; `in`: several); `negate`: `neq`, `not_in`.
    TextIn {
        values: Vec<String>,
        negate: bool,
    },
    /// Text containing this (case-sensitive).
    Contains(String),
    /// A number equal to one of these; `negate`: `neq`, `not_in`.
    NumberIn {
        values: Vec<f64>,
        negate: bool,
    },
    /// A number at least (`gte`) or at most (`lte`) this.
    AtLeast(f64),
    AtMost(f64),
    /// A metadata value (any JSON scalar) equal to one of these; `negate`: `neq`, `not_in`.
    ScalarIn {
        values: Vec<Value>,
        negate: bool,
    },
}

/// The customer of a sale: first sale or a later one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CustomerType {
    New,
    Recurring,
}

/// What conditions are evaluated against: one conversion.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context<'a> {
    pub country: Option<&'a str>,
    pub product_id: Option<&'a str>,
    /// The commission base, minor units of the payout currency (`None` for a lead).
    pub sale_amount: Option<i64>,
    pub customer_type: Option<CustomerType>,
    pub event_name: Option<&'a str>,
    pub metadata: Option<&'a serde_json::Map<String, Value>>,
}

fn bad(path: &str, what: &str, message: impl Into<String>) -> Invalid {
    Invalid::new(format!("{path}.{what}"), "invalid_condition", message)
}

fn text_value(path: &str, v: &Value) -> Result<String, Invalid> {
    match v {
        Value::String(s) if !s.is_empty() && s.len() <= MAX_TEXT => Ok(s.clone()),
        _ => Err(bad(path, "value", format!("value must be a text of 1 to {MAX_TEXT} characters"))),
    }
}

fn number_value(path: &str, v: &Value) -> Result<f64, Invalid> {
    v.as_f64().ok_or_else(|| bad(path, "value", "value must be a number"))
}

fn list<'v>(path: &str, v: &'v Value) -> Result<&'v [Value], Invalid> {
    match v {
        Value::Array(a) if !a.is_empty() && a.len() <= MAX_LIST => Ok(a),
        _ => Err(bad(path, "value", format!("`in` and `not_in` take a list of 1 to {MAX_LIST} values"))),
    }
}

fn scalar(path: &str, v: &Value) -> Result<Value, Invalid> {
    match v {
        Value::String(_) => text_value(path, v).map(Value::String),
        Value::Number(_) | Value::Bool(_) => Ok(v.clone()),
        _ => Err(bad(path, "value", "value must be a text, a number or a boolean")),
    }
}

impl Field {
    fn parse(path: &str, s: &str) -> Result<Field, Invalid> {
        Ok(match s {
            "country" => Field::Country,
            "product_id" => Field::ProductId,
            "sale_amount" => Field::SaleAmount,
            "customer_type" => Field::CustomerType,
            "event_name" => Field::EventName,
            _ => match s.strip_prefix("metadata.") {
                Some(key) if !key.is_empty() && key.len() <= MAX_TEXT => Field::Metadata(key.to_string()),
                _ => {
                    return Err(bad(
                        path,
                        "field",
                        format!(
                            "unknown field `{s}`: one of country, product_id, sale_amount, customer_type, event_name, metadata.<key>"
                        ),
                    ))
                }
            },
        })
    }
}

impl Condition {
    /// The condition's field and test; an error names the condition's part at `path`
    /// (`…conditions[0]`): `.field`, `.op` or `.value`.
    pub fn compile(&self, path: &str) -> Result<(Field, Test), Invalid> {
        let field = Field::parse(path, &self.field)?;
        let op = self.op.as_str();
        let negate = matches!(op, "neq" | "not_in");
        let wrong_op =
            |allowed: &str| bad(path, "op", format!("`{op}` does not apply to `{}`: use {allowed}", self.field));
        let test = match (&field, op) {
            (_, op) if !matches!(op, "eq" | "neq" | "in" | "not_in" | "gte" | "lte" | "contains") => {
                return Err(bad(
                    path,
                    "op",
                    format!("unknown op `{op}`: one of eq, neq, in, not_in, gte, lte, contains"),
                ))
            }
            (Field::SaleAmount, "eq" | "neq") => Test::NumberIn { values: vec![amount(path, &self.value)?], negate },
            (Field::SaleAmount, "in" | "not_in") => Test::NumberIn {
                values: list(path, &self.value)?.iter().map(|v| amount(path, v)).collect::<Result<_, _>>()?,
                negate,
            },
            (Field::SaleAmount, "gte") => Test::AtLeast(amount(path, &self.value)?),
            (Field::SaleAmount, "lte") => Test::AtMost(amount(path, &self.value)?),
            (Field::SaleAmount, _) => return Err(wrong_op("eq, neq, in, not_in, gte or lte")),
            (Field::Metadata(_), "eq" | "neq") => Test::ScalarIn { values: vec![scalar(path, &self.value)?], negate },
            (Field::Metadata(_), "in" | "not_in") => Test::ScalarIn {
                values: list(path, &self.value)?.iter().map(|v| scalar(path, v)).collect::<Result<_, _>>()?,
                negate,
            },
            (Field::Metadata(_), "gte") => Test::AtLeast(number_value(path, &self.value)?),
            (Field::Metadata(_), "lte") => Test::AtMost(number_value(path, &self.value)?),
            (Field::Metadata(_), _) => Test::Contains(text_value(path, &self.value)?),
            (_, "gte" | "lte") => return Err(wrong_op("eq, neq, in, not_in or contains")),
            (Field::Country | Field::CustomerType, "contains") => return Err(wrong_op("eq, neq, in or not_in")),
            (_, "contains") => Test::Contains(text_value(path, &self.value)?),
            (_, "eq" | "neq") => Test::TextIn { values: vec![self.text_of(&field, path, &self.value)?], negate },
            (_, _) => Test::TextIn {
                values: list(path, &self.value)?
                    .iter()
                    .map(|v| self.text_of(&field, path, v))
                    .collect::<Result<_, _>>()?,
                negate,
            },
        };
        Ok((field, test))
    }

    /// A text value of a text field; countries upper-cased and checked, customer types checked.
    fn text_of(&self, field: &Field, path: &str, v: &Value) -> Result<String, Invalid> {
        let s = text_value(path, v)?;
        match field {
            Field::Country => crate::partner::parse_country(&format!("{path}.value"), &s)
                .map_err(|e| Invalid { code: "invalid_condition", ..e }),
            Field::CustomerType if s != "new" && s != "recurring" => {
                Err(bad(path, "value", "customer_type is `new` or `recurring`"))
            }
            _ => Ok(s),
        }
    }

    /// Whether the conversion `c` meets this condition (`false` when it does not compile).
    pub fn matches(&self, c: &Context<'_>) -> bool {
        let Ok((field, test)) = self.compile("") else {
            return false;
        };
        let customer_type = c.customer_type.map(|t| match t {
            CustomerType::New => "new",
            CustomerType::Recurring => "recurring",
        });
        match field {
            Field::Country => c.country.is_some_and(|v| test.text(&v.to_ascii_uppercase())),
            Field::ProductId => c.product_id.is_some_and(|v| test.text(v)),
            Field::EventName => c.event_name.is_some_and(|v| test.text(v)),
            Field::CustomerType => customer_type.is_some_and(|v| test.text(v)),
            Field::SaleAmount => c.sale_amount.is_some_and(|v| test.number(v as f64)),
            Field::Metadata(key) => c.metadata.and_then(|m| m.get(&key)).is_some_and(|v| test.scalar(v)),
        }
    }
}

fn amount(path: &str, v: &Value) -> Result<f64, Invalid> {
    match v.as_i64() {
        Some(n) if (0..=crate::money::MAX_AMOUNT).contains(&n) => Ok(n as f64),
        _ => Err(bad(path, "value", "sale_amount is compared with whole minor units (0 or more)")),
    }
}

impl Test {
    fn text(&self, v: &str) -> bool {
        match self {
            Test::TextIn { values, negate } => values.iter().any(|x| x == v) != *negate,
            Test::Contains(s) => v.contains(s.as_str()),
            _ => false,
        }
    }

    fn number(&self, v: f64) -> bool {
        match self {
            Test::NumberIn { values, negate } => values.contains(&v) != *negate,
            Test::AtLeast(x) => v >= *x,
            Test::AtMost(x) => v <= *x,
            _ => false,
        }
    }

    /// A metadata value: `gte`/`lte` compare JSON numbers (a text never matches them); `eq`,
    /// `in` and their negations compare texts, a number by its JSON text (`"3"` = `3`).
    fn scalar(&self, v: &Value) -> bool {
        let as_text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        match self {
            Test::ScalarIn { values, negate } => match as_text(v) {
                Some(t) => values.iter().any(|x| as_text(x).as_deref() == Some(t.as_str())) != *negate,
                None => false,
            },
            Test::Contains(s) => matches!(v, Value::String(t) if t.contains(s.as_str())),
            Test::AtLeast(_) | Test::AtMost(_) => v.as_f64().is_some_and(|n| self.number(n)),
            _ => false,
        }
    }
}

impl Modifier {
    /// Checks the conditions (1 to [`MAX_CONDITIONS`]) at `path` (`…modifiers[2]`); the terms
    /// are checked by the reward, like its own.
    pub fn validate_conditions(&self, path: &str) -> Result<(), Invalid> {
        if self.conditions.is_empty() || self.conditions.len() > MAX_CONDITIONS {
            return Err(Invalid::new(
                format!("{path}.conditions"),
                "invalid_condition",
                format!("a modifier has 1 to {MAX_CONDITIONS} conditions"),
            ));
        }
        for (i, c) in self.conditions.iter().enumerate() {
            c.compile(&format!("{path}.conditions[{i}]"))?;
        }
        Ok(())
    }

    /// Whether the conversion meets the modifier's conditions (`all` or `any` of them).
    pub fn matches(&self, c: &Context<'_>) -> bool {
        match self.matching {
            Match::All => !self.conditions.is_empty() && self.conditions.iter().all(|x| x.matches(c)),
            Match::Any => self.conditions.iter().any(|x| x.matches(c)),
        }
    }
}

/// A number as the merchant wrote it: a whole number without a fraction (`3`), else as JSON
/// writes it (`2.5`). Not `f64`'s `Display`: core's float formatting is ~6 KB of wasm, and
/// serde_json brings its own.
fn shown(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        (n as i64).to_string()
    } else {
        serde_json::Number::from_f64(n).map(|x| x.to_string()).unwrap_or_default()
    }
}

/// A condition in words, for the partner portal ("in DE or AT", "on product pro").
impl Condition {
    pub fn describe(&self, money: &dyn Fn(i64) -> String) -> String {
        let Ok((field, test)) = self.compile("") else {
            return String::new();
        };
        let list = |values: &[String]| values.join(" or ");
        let what = |negate: bool, values: &[String]| format!("{}{}", if negate { "not " } else { "" }, list(values));
        match (&field, &test) {
            (Field::Country, Test::TextIn { values, negate }) => {
                format!("for customers {}in {}", if *negate { "not " } else { "" }, list(values))
            }
            (Field::ProductId, Test::TextIn { values, negate }) => format!("on {}", what(*negate, values)),
            (Field::ProductId, Test::Contains(s)) => format!("on products containing \"{s}\""),
            (Field::EventName, Test::TextIn { values, negate }) => format!("for {} events", what(*negate, values)),
            (Field::EventName, Test::Contains(s)) => format!("for events containing \"{s}\""),
            (Field::CustomerType, Test::TextIn { values, negate }) => {
                let new = values.iter().any(|v| v == "new") != *negate;
                let recurring = values.iter().any(|v| v == "recurring") != *negate;
                match (new, recurring) {
                    (true, false) => "on a customer's first purchase".to_string(),
                    (false, true) => "on a customer's later purchases".to_string(),
                    _ => "on every purchase".to_string(),
                }
            }
            (Field::SaleAmount, Test::AtLeast(n)) => format!("on sales of {} or more", money(*n as i64)),
            (Field::SaleAmount, Test::AtMost(n)) => format!("on sales of {} or less", money(*n as i64)),
            (Field::SaleAmount, Test::NumberIn { values, negate }) => format!(
                "on sales {}of {}",
                if *negate { "not " } else { "" },
                values.iter().map(|v| money(*v as i64)).collect::<Vec<_>>().join(" or ")
            ),
            (Field::Metadata(k), Test::ScalarIn { values, negate }) => format!(
                "when {k} is {}{}",
                if *negate { "not " } else { "" },
                values
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            (Field::Metadata(k), Test::Contains(s)) => format!("when {k} contains \"{s}\""),
            (Field::Metadata(k), Test::AtLeast(n)) => format!("when {k} is at least {}", shown(*n)),
            (Field::Metadata(k), Test::AtMost(n)) => format!("when {k} is at most {}", shown(*n)),
            _ => String::new(),
        }
    }
}

impl Modifier {
    /// The modifier's conditions in words, joined by "and" (`all`) or "or" (`any`).
    pub fn describe_conditions(&self, money: &dyn Fn(i64) -> String) -> String {
        let joiner = if self.matching == Match::All { " and " } else { " or " };
        self.conditions.iter().map(|c| c.describe(money)).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(joiner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(field: &str, op: &str, value: Value) -> Condition {
        Condition { field: field.into(), op: op.into(), value }
    }

    fn err(c: Condition) -> Invalid {
        c.compile("m.conditions[3]").unwrap_err()
    }

    #[test]
    fn compile_names_the_wrong_part() {
        assert_eq!(err(cond("plan", "eq", json!("pro"))).field, "m.conditions[3].field");
        assert_eq!(err(cond("metadata.", "eq", json!("pro"))).field, "m.conditions[3].field");
        assert_eq!(err(cond("country", "like", json!("DE"))).field, "m.conditions[3].op");
        assert_eq!(err(cond("country", "gte", json!("DE"))).field, "m.conditions[3].op");
        assert_eq!(err(cond("country", "contains", json!("D"))).field, "m.conditions[3].op");
        assert_eq!(err(cond("sale_amount", "contains", json!("1"))).field, "m.conditions[3].op");
        assert_eq!(err(cond("customer_type", "gte", json!(1))).field, "m.conditions[3].op");
        assert_eq!(err(cond("country", "eq", json!("XX"))).field, "m.conditions[3].value");
        assert_eq!(err(cond("country", "eq", json!(49))).field, "m.conditions[3].value");
        assert_eq!(err(cond("country", "in", json!("DE"))).field, "m.conditions[3].value");
        assert_eq!(err(cond("country", "in", json!([]))).field, "m.conditions[3].value");
        assert_eq!(err(cond("sale_amount", "gte", json!("100"))).field, "m.conditions[3].value");
        assert_eq!(err(cond("sale_amount", "gte", json!(1.5))).field, "m.conditions[3].value");
        assert_eq!(err(cond("sale_amount", "gte", json!(-1))).field, "m.conditions[3].value");
        assert_eq!(err(cond("customer_type", "eq", json!("old"))).field, "m.conditions[3].value");
        assert_eq!(err(cond("product_id", "eq", json!(""))).field, "m.conditions[3].value");
        assert_eq!(err(cond("metadata.plan", "gte", json!("x"))).field, "m.conditions[3].value");
        assert_eq!(err(cond("metadata.plan", "eq", json!({"a": 1}))).field, "m.conditions[3].value");
        assert_eq!(err(cond("metadata.plan", "contains", json!(3))).field, "m.conditions[3].value");
        assert_eq!(err(cond("country", "eq", json!("XX"))).code, "invalid_condition");
        for ok in [
            cond("country", "in", json!(["de", "AT"])),
            cond("product_id", "contains", json!("pro")),
            cond("sale_amount", "lte", json!(0)),
            cond("customer_type", "neq", json!("new")),
            cond("event_name", "not_in", json!(["Trial"])),
            cond("metadata.seats", "gte", json!(2.5)),
            cond("metadata.annual", "eq", json!(true)),
        ] {
            assert!(ok.compile("p").is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn conditions_match_the_conversion() {
        let meta = json!({"plan": "pro-annual", "seats": "12", "annual": true, "n": 3});
        let meta = meta.as_object().unwrap();
        let c = Context {
            country: Some("de"),
            product_id: Some("prod_pro"),
            sale_amount: Some(5000),
            customer_type: Some(CustomerType::Recurring),
            event_name: Some("Upgrade"),
            metadata: Some(meta),
        };
        let yes = |f: &str, op: &str, v: Value| assert!(cond(f, op, v.clone()).matches(&c), "{f} {op} {v}");
        let no = |f: &str, op: &str, v: Value| assert!(!cond(f, op, v.clone()).matches(&c), "{f} {op} {v}");
        yes("country", "eq", json!("DE"));
        yes("country", "in", json!(["at", "de"]));
        no("country", "not_in", json!(["DE"]));
        yes("country", "neq", json!("FR"));
        yes("product_id", "contains", json!("pro"));
        no("product_id", "eq", json!("PROD_PRO"));
        yes("sale_amount", "gte", json!(5000));
        no("sale_amount", "gte", json!(5001));
        yes("sale_amount", "lte", json!(5000));
        yes("sale_amount", "in", json!([1, 5000]));
        yes("customer_type", "eq", json!("recurring"));
        no("customer_type", "eq", json!("new"));
        yes("event_name", "eq", json!("Upgrade"));
        yes("metadata.plan", "contains", json!("annual"));
        no("metadata.seats", "gte", json!(10)); // a text is not a number
        yes("metadata.n", "gte", json!(3));
        yes("metadata.n", "eq", json!("3"));
        yes("metadata.n", "in", json!([3, 4]));
        yes("metadata.annual", "eq", json!(true));
        no("metadata.annual", "eq", json!(false));
        no("metadata.missing", "neq", json!("x"));
        no("metadata.missing", "not_in", json!(["x"]));
        // A lead: no sale fields, so no condition on them matches, negated or not.
        let lead = Context { event_name: Some("Sign up"), ..Context::default() };
        assert!(!cond("sale_amount", "lte", json!(100)).matches(&lead));
        assert!(!cond("product_id", "neq", json!("x")).matches(&lead));
        assert!(!cond("country", "neq", json!("DE")).matches(&lead));
        // A condition that does not compile fails closed.
        assert!(!cond("country", "gte", json!("DE")).matches(&c));
    }

    #[test]
    fn all_and_any() {
        let m = |matching, conds: Vec<Condition>| Modifier {
            conditions: conds,
            matching,
            kind: RewardType::Flat,
            amount: 1,
            duration_months: None,
        };
        let c = Context { country: Some("DE"), product_id: Some("pro"), ..Context::default() };
        let de = cond("country", "eq", json!("DE"));
        let fr = cond("country", "eq", json!("FR"));
        assert!(m(Match::All, vec![de.clone(), cond("product_id", "eq", json!("pro"))]).matches(&c));
        assert!(!m(Match::All, vec![de.clone(), fr.clone()]).matches(&c));
        assert!(m(Match::Any, vec![de, fr.clone()]).matches(&c));
        assert!(!m(Match::Any, vec![fr]).matches(&c));
        assert!(!m(Match::All, vec![]).matches(&c));
        let wire: Modifier = crate::wire::from_str(
            r#"{"conditions":[{"field":"country","op":"eq","value":"DE"}],"type":"percentage","amount":3000}"#,
        )
        .unwrap();
        assert_eq!(wire.matching, Match::All);
        assert!(
            crate::wire::from_str::<Modifier>(r#"{"conditions":[],"match":"some","type":"flat","amount":1}"#).is_err()
        );
    }

    #[test]
    fn numbers_in_words_as_written() {
        let money = |n: i64| format!("${n}");
        let d = |op: &str, v: Value| cond("metadata.seats", op, v).describe(&money);
        assert_eq!(d("gte", json!(3)), "when seats is at least 3");
        assert_eq!(d("lte", json!(2.5)), "when seats is at most 2.5");
        assert_eq!(d("gte", json!(-0.125)), "when seats is at least -0.125");
        assert_eq!(d("gte", json!(1e20)), "when seats is at least 1e+20");
    }
}
