//! Strategies for property tests: arbitrary JSON, and bytes that are sometimes JSON.
//! `PROPTEST_CASES=1000000 cargo test --release fuzz_` throws a million inputs at each parser.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Any JSON value, nested a few levels, with keys Herald looks for mixed in.
pub(crate) fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        Just(Value::String("private-x".into())),
        Just(Value::String("presence-room".into())),
        Just(Value::String("client-typing".into())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        let key = prop_oneof![
            Just("channel".to_owned()),
            Just("channels".to_owned()),
            Just("event".to_owned()),
            Just("name".to_owned()),
            Just("data".to_owned()),
            Just("socket".to_owned()),
            Just("socket_id".to_owned()),
            Just("auth".to_owned()),
            Just("headers".to_owned()),
            Just("channel_data".to_owned()),
            Just("user_id".to_owned()),
            ".{0,12}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Random bytes, or the text of arbitrary JSON, or JSON cut short.
pub(crate) fn arb_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        arb_json().prop_map(|v| v.to_string().into_bytes()),
        (arb_json(), any::<prop::sample::Index>()).prop_map(|(v, cut)| {
            let text = v.to_string().into_bytes();
            let at = cut.index(text.len() + 1);
            text[..at].to_vec()
        }),
    ]
}
