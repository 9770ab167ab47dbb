//! Bounded fuzzing of the decoder with proptest: arbitrary text, and real notifications with
//! any field replaced by arbitrary JSON. Whatever arrives, `decode_message` answers without
//! panicking, its errors are one short line, and an upload it finds is usable. The case count
//! keeps the run to a second or two in the suite; `PROPTEST_CASES` raises it for a long run.

use proptest::prelude::*;
use serde_json::Value;

use super::key::{decode_form_key, encode_form_key};
use super::{decode_message, Decoded};

const PUT: &str = include_str!("testdata/s3_put_v2_1.json");
const SNS: &str = include_str!("testdata/sns_s3_put.json");
const EVENTBRIDGE: &str = include_str!("testdata/eventbridge_object_created.json");

/// Any JSON value, a few levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every path to a value inside `v`, as JSON pointers.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(map) => map
            .iter()
            .for_each(|(k, c)| pointers(c, format!("{at}/{k}"), out)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, c)| pointers(c, format!("{at}/{i}"), out)),
        _ => {}
    }
}

fn check(body: &str) -> Result<(), TestCaseError> {
    match decode_message(body) {
        Ok(Decoded::Uploads(uploads)) => {
            prop_assert!(!uploads.is_empty());
            for u in uploads {
                prop_assert!(!u.bucket.is_empty() && !u.key.is_empty());
            }
        }
        Ok(_) => {}
        Err(e) => {
            let text = e.to_string();
            prop_assert!(
                !text.contains('\n') && text.chars().count() <= 300,
                "{text}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_is_answered(body in ".{0,400}") {
        check(&body)?;
    }

    #[test]
    fn real_notifications_with_a_field_replaced(which in 0usize..3, pick in any::<prop::sample::Index>(), with in json()) {
        let base = [PUT, SNS, EVENTBRIDGE][which];
        let mut v: Value = serde_json::from_str(base).unwrap();
        let mut paths = Vec::new();
        pointers(&v, String::new(), &mut paths);
        let path = pick.get(&paths).clone();
        if path.is_empty() {
            v = with;
        } else if let Some(slot) = v.pointer_mut(&path) {
            *slot = with;
        }
        check(&v.to_string())?;
    }

    #[test]
    fn keys_survive_form_encoding(key in "\\PC{1,64}") {
        prop_assert_eq!(decode_form_key(&encode_form_key(&key)).unwrap(), key);
    }
}
