//! Property tests of the response parsers: whatever an appliance (or something pretending to
//! be one) sends, parsing ends in a value or a typed error, never a panic.

use proptest::prelude::*;
use serde_json::Value;

use super::model::json;

/// Arbitrary JSON values, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        // Values that look almost right: dates, roles.
        prop_oneof![
            Just("2026-11-23T05:00:00+00:00"),
            Just("2026-11-23T05:00:00.123Z"),
            Just("2026-11-23T05:00:00+04:00"),
            Just("primary"),
            Just("backup"),
            Just("none"),
            Just("single"),
            Just("full_access"),
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field names that the parsers look for, mixed with others.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop_oneof![
            Just("version"),
            Just("build"),
            Just("appliance_hostname"),
            Just("appliance_id"),
            Just("cluster_role"),
            Just("failover_role"),
            Just("enabled_shared_ips"),
            Just("last_data_sync"),
            Just("last_data_sync_status"),
            Just("message"),
            Just("id"),
            Just("hostname"),
            Just("product"),
            Just("permissions"),
            Just("perm_command"),
            Just("current_time"),
            Just("access_token"),
            Just("token_type"),
            Just("expires_in"),
            Just("errors"),
        ]
        .prop_map(str::to_string),
        "[a-z_]{1,12}",
    ]
}

fn every_parser(body: &[u8]) {
    let _ = json::health(body, true);
    let _ = json::health(body, false);
    let _ = json::appliances(body);
    let _ = json::info(body);
    let _ = json::message(body);
    let _ = json::error_bag(body);
    let _ = json::token(body);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        every_parser(&body);
    }

    #[test]
    fn arbitrary_json_never_panics(value in any_json()) {
        every_parser(value.to_string().as_bytes());
    }

    #[test]
    fn a_health_object_with_arbitrary_values_is_parsed_or_refused_with_a_message(
        fields in prop::collection::btree_map(field_name(), any_json(), 0..10)
    ) {
        let body = Value::Object(fields.into_iter().collect()).to_string();
        match json::health(body.as_bytes(), true) {
            Ok((health, _)) => {
                // Whatever was accepted is self-consistent: an issue for each unusable field.
                for issue in &health.field_issues {
                    prop_assert!(!issue.problem.is_empty());
                }
            }
            Err(malformed) => prop_assert!(!malformed.0.is_empty()),
        }
    }

    #[test]
    fn truncated_valid_answers_are_typed_errors(cut in 0usize..300) {
        let body = br#"{"version":"25.1.2","build":"1","appliance_hostname":"e","appliance_id":"x","cluster_role":"single","failover_role":"primary","last_data_sync":"2026-11-23T05:00:00.123+00:00","last_data_sync_status":"success"}"#;
        let cut = cut.min(body.len());
        let result = json::health(&body[..cut], true);
        if cut < body.len() {
            prop_assert!(result.is_err());
        } else {
            prop_assert!(result.is_ok());
        }
    }
}
