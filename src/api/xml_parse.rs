//! Parsing the older XML command API's answers into the same models the v2 API gives.
//!
//! The namespace of these documents changed across versions (a bomgar.com URI on older
//! appliances, a beyondtrust.com one later, none at all in some captures), so elements are
//! matched by their local name and the namespace URI is ignored. Errors come back as an
//! `<error>` document with HTTP 200; they are returned as `Err(message)` inside `Ok`, and only
//! a document that cannot be understood at all is [`Malformed`].

use roxmltree::{Document, Node};

use super::model::json::Malformed;
use super::model::{
    ApiInfo, ApplianceRecord, ClusterRole, CommandPermission, FailoverAccepted, FailoverRole,
    FieldIssue, Health, HealthBase, Product,
};
use super::time::UtcTime;

/// An answer, or the appliance's `<error>` message.
pub type Answered<T> = Result<T, String>;

fn document(body: &[u8]) -> Result<Document<'_>, Malformed> {
    let text = std::str::from_utf8(body)
        .map_err(|e| Malformed(format!("XML answer is not UTF-8: {e}")))?;
    // roxmltree refuses DTDs by default, so entity tricks (billion laughs, external entities)
    // are errors rather than work.
    Document::parse(text).map_err(|e| Malformed(format!("XML answer is not well-formed: {e}")))
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn text_of(node: Node<'_, '_>) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect::<String>()
        .trim()
        .to_string()
}

fn child_text(node: Node<'_, '_>, name: &str) -> Option<String> {
    child(node, name).map(text_of).filter(|t| !t.is_empty())
}

/// The root, or the appliance's error message when the root is `<error>`.
fn root_or_error<'a, 'i>(
    doc: &'a Document<'i>,
    expected: &str,
) -> Result<Answered<Node<'a, 'i>>, Malformed> {
    let root = doc.root_element();
    match root.tag_name().name() {
        "error" => Ok(Err(text_of(root))),
        name if name == expected => Ok(Ok(root)),
        other => Err(Malformed(format!(
            "XML answer has root <{}>, expected <{expected}>",
            short(other)
        ))),
    }
}

fn short(text: &str) -> String {
    text.chars().take(64).collect()
}

/// `action=check_health`.
pub fn check_health(body: &[u8]) -> Result<Answered<Health>, Malformed> {
    let doc = document(body)?;
    let root = match root_or_error(&doc, "health_check")? {
        Ok(root) => root,
        Err(message) => return Ok(Err(message)),
    };
    let mut issues = Vec::new();
    let appliance = child(root, "appliance");
    let (version, build) = match child_text(root, "version") {
        // "19.1.8 (37380-749b17ca…)": the version, then the build in parentheses.
        Some(text) => match text.split_once(" (") {
            Some((version, build)) => (
                Some(version.trim().to_string()),
                Some(build.trim_end_matches(')').trim().to_string()),
            ),
            None => (Some(text), None),
        },
        None => (None, None),
    };
    let failover_role = match child_text(root, "failover_role") {
        Some(text) => {
            let role = FailoverRole::parse(&text);
            if role.is_none() {
                issues.push(FieldIssue {
                    field: "failover_role",
                    problem: format!("unknown value {:?}", short(&text)),
                });
            }
            role
        }
        None => None,
    };
    let cluster_role = child_text(root, "cluster_role").and_then(|t| ClusterRole::parse(&t));
    let last_data_sync = child(root, "last_data_sync_time").and_then(|node| {
        if let Some(ts) = node.attribute("ts") {
            match ts
                .trim()
                .parse::<i64>()
                .ok()
                .and_then(UtcTime::from_unix_seconds)
            {
                Some(t) => return Some(t),
                None => issues.push(FieldIssue {
                    field: "last_data_sync",
                    problem: format!("ts {:?} is not a Unix time", short(ts)),
                }),
            }
        }
        let text = text_of(node);
        if text.is_empty() {
            return None;
        }
        match UtcTime::parse(&text) {
            Ok(t) => Some(t),
            Err(e) => {
                issues.push(FieldIssue {
                    field: "last_data_sync",
                    problem: e.to_string(),
                });
                None
            }
        }
    });
    let enabled_shared_ips = child(root, "enabled_shared_ips")
        .map(|ips| {
            ips.children()
                .filter(|c| c.is_element() && c.tag_name().name() == "ip")
                .map(text_of)
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let base = HealthBase {
        version,
        build,
        appliance_hostname: appliance.map(text_of).filter(|t| !t.is_empty()),
        appliance_id: appliance
            .and_then(|a| a.attribute("id"))
            .map(str::to_string),
        cluster_role,
        failover_role,
        enabled_shared_ips,
        last_data_sync,
        last_data_sync_status: child_text(root, "last_data_sync_status"),
        field_issues: issues,
    };
    match child_text(root, "success").as_deref() {
        Some("1") => Ok(Ok(Health::Healthy(base))),
        Some("0") => Ok(Ok(Health::Unhealthy {
            message: child_text(root, "error_message"),
            health: base,
        })),
        Some(other) => Err(Malformed(format!(
            "health_check has success {:?}, expected 1 or 0",
            short(other)
        ))),
        None => Err(Malformed(
            "health_check has no <success> element".to_string(),
        )),
    }
}

/// `action=get_appliances`.
pub fn appliances(body: &[u8]) -> Result<Answered<Vec<ApplianceRecord>>, Malformed> {
    let doc = document(body)?;
    let root = match root_or_error(&doc, "appliances")? {
        Ok(root) => root,
        Err(message) => return Ok(Err(message)),
    };
    let records = root
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "appliance")
        .map(|node| {
            let mut raw = serde_json::Map::new();
            if let Some(id) = node.attribute("id") {
                raw.insert("id".into(), id.into());
            }
            for field in node.children().filter(|c| c.is_element()) {
                raw.insert(field.tag_name().name().to_string(), text_of(field).into());
            }
            ApplianceRecord {
                id: node.attribute("id").map(str::to_string),
                hostname: child_text(node, "public_hostname").or_else(|| child_text(node, "name")),
                failover_role: child_text(node, "failover_role")
                    .and_then(|t| FailoverRole::parse(&t)),
                cluster_role: child_text(node, "cluster_role").and_then(|t| ClusterRole::parse(&t)),
                raw: serde_json::Value::Object(raw),
            }
        })
        .collect();
    Ok(Ok(records))
}

/// `action=get_api_info`.
pub fn api_info(body: &[u8]) -> Result<Answered<ApiInfo>, Malformed> {
    let doc = document(body)?;
    let root = match root_or_error(&doc, "api_information")? {
        Ok(root) => root,
        Err(message) => return Ok(Err(message)),
    };
    let find = |name: &str| {
        root.descendants()
            .find(|n| n.is_element() && n.tag_name().name() == name)
            .map(text_of)
            .filter(|t| !t.is_empty())
    };
    // Permissions appear as <perm_command>…</perm_command>, or as a <permission name="…"
    // value="…"/> list on some versions.
    let perm_command = find("perm_command").or_else(|| {
        root.descendants()
            .find(|n| {
                n.is_element()
                    && n.tag_name().name() == "permission"
                    && n.attribute("name") == Some("perm_command")
            })
            .and_then(|n| n.attribute("value").map(str::to_string))
    });
    Ok(Ok(ApiInfo {
        product: find("product").map(|p| Product::parse(&p)),
        command_api_version: find("api_version"),
        perm_command: perm_command.map(|p| CommandPermission::parse(&p)),
        current_time: None,
        field_issues: Vec::new(),
    }))
}

/// `action=set_failover_role`: `<success>` with one of two texts, or `<error>`.
pub fn failover_answer(body: &[u8]) -> Result<Answered<FailoverAccepted>, Malformed> {
    let doc = document(body)?;
    let root = match root_or_error(&doc, "success")? {
        Ok(root) => root,
        Err(message) => return Ok(Err(message)),
    };
    let message = text_of(root);
    // "Successfully started data sync. Role change will occur upon successful completion."
    // means the swap is still to come; "Successfully changed role." means it is done.
    let completes_later =
        message.contains("started data sync") || message.contains("upon successful completion");
    Ok(Ok(FailoverAccepted {
        message,
        completes_later,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The real capture from an RS 19.1 appliance, verbatim.
    const CAPTURE: &str = r#"<health_check xmlns="http://www.bomgar.com/namespaces/API/command">
  <appliance id="50adeb59f0f04163b09b7591af1949ea">ip-10-156-64-136</appliance>
  <version>19.1.8 (37380-749b17ca…)</version>
  <success>1</success>
  <failover_role>none</failover_role>
</health_check>"#;

    #[test]
    fn the_real_capture_parses() {
        let Ok(Health::Healthy(base)) = check_health(CAPTURE.as_bytes()).unwrap() else {
            panic!("healthy")
        };
        assert_eq!(
            base.appliance_id.as_deref(),
            Some("50adeb59f0f04163b09b7591af1949ea")
        );
        assert_eq!(base.appliance_hostname.as_deref(), Some("ip-10-156-64-136"));
        assert_eq!(base.version.as_deref(), Some("19.1.8"));
        assert_eq!(base.build.as_deref(), Some("37380-749b17ca…"));
        assert_eq!(base.failover_role, Some(FailoverRole::None));
        assert_eq!(
            base.last_data_sync, None,
            "failover not configured: absent elements are normal"
        );
        assert!(base.field_issues.is_empty());
    }

    fn full(namespace: Option<&str>, success: &str) -> String {
        let xmlns = namespace
            .map(|n| format!(r#" xmlns="{n}""#))
            .unwrap_or_default();
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<health_check{xmlns}>
  <appliance id="0123456789abcdef0123456789abcdef">east.example.com</appliance>
  <version>23.2.1 (40123-abc)</version>
  <success>{success}</success>
  <error_message>Disk full</error_message>
  <failover_role>primary</failover_role>
  <enabled_shared_ips><ip>10.0.0.5</ip><ip>fd00::5</ip></enabled_shared_ips>
  <last_data_sync_time ts="1763877600">2025-11-23T06:00:00+00:00</last_data_sync_time>
  <last_data_sync_status>Success</last_data_sync_status>
</health_check>"#
        )
    }

    #[test]
    fn every_optional_element_in_every_namespace() {
        for namespace in [
            Some("http://www.bomgar.com/namespaces/API/command"),
            Some("http://www.beyondtrust.com/namespaces/API/command"),
            None,
        ] {
            let Ok(Health::Healthy(base)) = check_health(full(namespace, "1").as_bytes()).unwrap()
            else {
                panic!("{namespace:?}")
            };
            assert_eq!(base.failover_role, Some(FailoverRole::Primary));
            assert_eq!(
                base.enabled_shared_ips,
                vec!["10.0.0.5".to_string(), "fd00::5".to_string()]
            );
            assert_eq!(
                base.last_data_sync,
                UtcTime::from_unix_seconds(1_763_877_600)
            );
            assert_eq!(base.last_data_sync_status.as_deref(), Some("Success"));
        }
        let Ok(Health::Unhealthy { message, .. }) =
            check_health(full(None, "0").as_bytes()).unwrap()
        else {
            panic!("unhealthy")
        };
        assert_eq!(message.as_deref(), Some("Disk full"));
    }

    #[test]
    fn a_sync_time_in_text_only_is_used_and_a_bad_one_is_a_field_issue() {
        let text_only = full(None, "1").replace(r#" ts="1763877600""#, "");
        let Ok(Health::Healthy(base)) = check_health(text_only.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(
            base.last_data_sync,
            UtcTime::parse("2025-11-23T06:00:00Z").ok()
        );
        let bad = text_only.replace("2025-11-23T06:00:00+00:00", "2025-11-23T06:00:00+02:00");
        let Ok(Health::Healthy(base)) = check_health(bad.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(base.last_data_sync, None);
        assert_eq!(base.field_issues[0].field, "last_data_sync");
    }

    #[test]
    fn error_answers_are_errors_with_their_message() {
        let error = r#"<error xmlns="http://www.beyondtrust.com/namespaces/API/command">Invalid action: check_healthy</error>"#;
        assert_eq!(
            check_health(error.as_bytes()).unwrap(),
            Err("Invalid action: check_healthy".to_string())
        );
        assert_eq!(
            failover_answer(error.as_bytes()).unwrap().unwrap_err(),
            "Invalid action: check_healthy"
        );
    }

    #[test]
    fn both_success_texts_of_set_failover_role() {
        let done = failover_answer(b"<success>Successfully changed role.</success>")
            .unwrap()
            .unwrap();
        assert!(!done.completes_later);
        let later = failover_answer(b"<success xmlns=\"http://www.bomgar.com/namespaces/API/command\">Successfully started data sync. Role change will occur upon successful completion.</success>").unwrap().unwrap();
        assert!(later.completes_later);
    }

    #[test]
    fn appliances_and_api_info() {
        let list = br#"<appliances xmlns="http://www.bomgar.com/namespaces/API/command">
          <appliance id="aa"><name>east</name><public_hostname>east.example.com</public_hostname><cluster_role>single</cluster_role><failover_role>primary</failover_role><accepting_connections>1</accepting_connections><timezone_offset>0</timezone_offset></appliance>
          <appliance id="bb"><name>west</name><failover_role>backup</failover_role></appliance>
        </appliances>"#;
        let records = appliances(list).unwrap().unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].hostname.as_deref(), Some("east.example.com"));
        assert_eq!(records[1].hostname.as_deref(), Some("west"));
        assert_eq!(records[1].failover_role, Some(FailoverRole::Backup));
        assert_eq!(records[0].raw["accepting_connections"], "1");
        let info = api_info(br#"<api_information><api_version>1.19.0</api_version><permissions><perm_command>full_access</perm_command></permissions></api_information>"#).unwrap().unwrap();
        assert_eq!(info.perm_command, Some(CommandPermission::FullAccess));
        assert_eq!(info.command_api_version.as_deref(), Some("1.19.0"));
    }

    #[test]
    fn hostile_documents_are_refused() {
        let entity = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><health_check>&lol;</health_check>"#;
        assert!(check_health(entity).is_err());
        assert!(check_health(b"<health_check><success>1</success>").is_err());
        assert!(check_health(b"<other/>").is_err());
        assert!(check_health(b"\xff\xfe").is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = check_health(&body);
            let _ = appliances(&body);
            let _ = api_info(&body);
            let _ = failover_answer(&body);
        }

        #[test]
        fn mangled_real_documents_never_panic(cut in 0usize..600, flip in 0usize..600, byte in any::<u8>()) {
            let mut body = full(Some("http://www.bomgar.com/namespaces/API/command"), "1").into_bytes();
            if flip < body.len() {
                body[flip] = byte;
            }
            body.truncate(cut.max(1));
            let _ = check_health(&body);
        }
    }
}
