//! Kubernetes API server audit log lines to `k8s_audit` capture rows.
//!
//! kube-apiserver started with `--audit-log-path` writes one JSON object per
//! line, an `Event` of API group `audit.k8s.io`, version `v1`: `auditID`,
//! `stage`, `verb`, `requestURI`, `user` (`username`, `uid`, `groups`,
//! `extra`), `sourceIPs`, `userAgent`, `objectRef`, `responseStatus`,
//! `requestReceivedTimestamp`, `stageTimestamp` and `annotations`, among
//! others. The fields a rule or a responder needs become the `audit_*`
//! columns; `requestObject`, `responseObject` and the rest are skipped
//! unread.
//!
//! A line must have `apiVersion` `audit.k8s.io/v1`, `kind` `Event`, and
//! `auditID`, `stage`, `verb`, `requestURI` and `stageTimestamp` (strings);
//! otherwise it is not mapped and the import reports it. The row's `time` is
//! `stageTimestamp` (see `docs/import.md` for why); the node columns that
//! cannot be null (`host`, `pid`, `comm`, ...) hold empty strings and zeros,
//! and no rule view shows them on an audit event.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;

use super::{parse_object, AuditValues, Mapped, Row, RowFacts, Skip};
use crate::capture::EventKind;

/// The only API version imported.
const API_VERSION: &str = "audit.k8s.io/v1";

/// The `user.extra` key whose value names the pod a service account token was bound to.
const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    #[serde(borrow)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "auditID")]
    audit_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    stage: Option<Cow<'a, str>>,
    #[serde(borrow)]
    verb: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "requestURI")]
    request_uri: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user: Option<UserInfo<'a>>,
    #[serde(rename = "sourceIPs")]
    source_ips: Option<Vec<String>>,
    #[serde(borrow)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    object_ref: Option<ObjectRef<'a>>,
    response_status: Option<Status>,
    #[serde(borrow)]
    request_received_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    stage_timestamp: Option<Cow<'a, str>>,
    annotations: Option<HashMap<String, String>>,
}

/// `authentication.k8s.io/v1` `UserInfo`.
#[derive(Deserialize)]
struct UserInfo<'a> {
    #[serde(borrow)]
    username: Option<Cow<'a, str>>,
    groups: Option<Vec<String>>,
    extra: Option<HashMap<String, Vec<String>>>,
}

/// `audit.k8s.io/v1` `ObjectReference`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef<'a> {
    #[serde(borrow)]
    resource: Option<Cow<'a, str>>,
    #[serde(borrow)]
    subresource: Option<Cow<'a, str>>,
    #[serde(borrow)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    api_group: Option<Cow<'a, str>>,
    #[serde(borrow)]
    api_version: Option<Cow<'a, str>>,
}

/// The part of `meta/v1` `Status` the import keeps.
#[derive(Deserialize)]
struct Status {
    code: Option<i32>,
}

/// A required string of the event, or why the line is not mapped.
fn required<'a>(v: Option<Cow<'a, str>>, key: &str) -> Result<Cow<'a, str>, Skip> {
    v.ok_or_else(|| Skip::new("missing field", format!("audit event without `{key}`")))
}

/// An RFC 3339 timestamp as nanoseconds since the epoch.
fn timestamp(s: &str, key: &str) -> Result<i64, Skip> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| Skip::bad(format!("`{key}` {s:?} is not an RFC 3339 timestamp ({e})")))?;
    t.timestamp_nanos_opt().ok_or_else(|| Skip::bad(format!("`{key}` {s:?} is outside the representable range")))
}

/// Maps one line to a `k8s_audit` row.
pub(crate) fn map_line(line: &str) -> Result<Mapped<'_>, Skip> {
    let ev: Event<'_> = parse_object(line, "an audit event")?;
    match (ev.api_version.as_deref(), ev.kind.as_deref()) {
        (Some(API_VERSION), Some("Event")) => {}
        (Some(API_VERSION), kind) => {
            return Err(Skip::new(
                "other kind",
                format!("`kind` is {:?}; expected \"Event\"", kind.unwrap_or("(missing)")),
            ))
        }
        (version, _) => {
            return Err(Skip::new(
                "other apiVersion",
                format!("`apiVersion` is {:?}; only {API_VERSION:?} is imported", version.unwrap_or("(missing)")),
            ))
        }
    }
    let id = required(ev.audit_id, "auditID")?;
    let stage = required(ev.stage, "stage")?;
    let verb = required(ev.verb, "verb")?;
    let request_uri = required(ev.request_uri, "requestURI")?;
    let time = timestamp(&required(ev.stage_timestamp, "stageTimestamp")?, "stageTimestamp")?;
    let request_received =
        ev.request_received_timestamp.map(|t| timestamp(&t, "requestReceivedTimestamp")).transpose()?;
    let (user, user_groups, pod_name) = match ev.user {
        Some(u) => {
            let pod = u.extra.and_then(|mut e| e.remove(POD_NAME_EXTRA)).and_then(|v| v.into_iter().next());
            (u.username, u.groups, pod)
        }
        None => (None, None, None),
    };
    let mut annotations = ev.annotations.unwrap_or_default();
    let object = ev.object_ref;
    let (resource, subresource, namespace, name, api_group, api_version) = match object {
        Some(o) => (o.resource, o.subresource, o.namespace, o.name, o.api_group, o.api_version),
        None => (None, None, None, None, None, None),
    };
    let owned = |v: Option<Vec<String>>| v.map(|v| v.into_iter().map(Cow::Owned).collect());
    let audit = AuditValues {
        id,
        stage,
        verb,
        request_uri,
        user,
        user_groups: owned(user_groups),
        pod_name: pod_name.map(Cow::Owned),
        source_ips: owned(ev.source_ips),
        user_agent: ev.user_agent,
        resource,
        subresource,
        namespace,
        name,
        api_group,
        api_version,
        response_code: ev.response_status.and_then(|s| s.code),
        decision: annotations.remove("authorization.k8s.io/decision").map(Cow::Owned),
        reason: annotations.remove("authorization.k8s.io/reason").map(Cow::Owned),
        request_received,
    };
    let row = Row {
        time,
        kind: EventKind::K8sAudit,
        host: Cow::Borrowed(""),
        pid: 0,
        tid: 0,
        ppid: 0,
        uid: 0,
        gid: 0,
        comm: Cow::Borrowed(""),
        exe: None,
        args: None,
        path: None,
        requested_path: None,
        flags: None,
        result: None,
        tty: None,
        cgroup_id: 0,
        container_id: None,
        sid: None,
        pgid: None,
        start: None,
        parent_start: None,
        cwd: None,
        container_started: None,
    };
    Ok(Mapped { audit: Some(Box::new(audit)), ..Mapped::row(row, RowFacts::default()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forbidden_request_by_a_pods_token() {
        let line = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a-1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/secrets","verb":"list","user":{"username":"system:serviceaccount:shop:web","groups":["system:serviceaccounts","system:authenticated"],"extra":{"authentication.kubernetes.io/pod-name":["web-1"],"authentication.kubernetes.io/pod-uid":["u-1"]}},"sourceIPs":["10.0.0.7"],"userAgent":"curl/8.5.0","objectRef":{"resource":"secrets","namespace":"shop","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":403},"requestReceivedTimestamp":"2026-11-20T10:15:33.100000Z","stageTimestamp":"2026-11-20T10:15:33.104000Z","annotations":{"authorization.k8s.io/decision":"forbid","authorization.k8s.io/reason":""}}"#;
        let m = map_line(line).unwrap();
        let a = m.audit.unwrap();
        assert_eq!(m.row.kind, EventKind::K8sAudit);
        // 2026-11-20T10:15:33.104Z, computed by hand: 1_795_169_733 s after the epoch.
        assert_eq!(m.row.time, 1_795_169_733_104_000_000);
        assert_eq!(a.request_received, Some(1_795_169_733_100_000_000));
        assert_eq!(a.pod_name.as_deref(), Some("web-1"));
        assert_eq!(a.decision.as_deref(), Some("forbid"));
        assert_eq!(a.reason.as_deref(), Some(""));
        assert_eq!(a.response_code, Some(403));
        assert_eq!(a.api_group, None);
        assert_eq!(a.user_groups.unwrap().len(), 2);
    }

    #[test]
    fn other_versions_and_missing_fields_are_named() {
        let v1beta1 = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1beta1","auditID":"x","stage":"ResponseComplete","verb":"get","requestURI":"/","stageTimestamp":"2026-11-20T10:15:33Z"}"#;
        let e = map_line(v1beta1).unwrap_err();
        assert_eq!(e.class, "other apiVersion");
        assert!(e.message.contains("\"audit.k8s.io/v1beta1\""), "{}", e.message);
        let no_stage = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x","verb":"get","requestURI":"/","stageTimestamp":"2026-11-20T10:15:33Z"}"#;
        assert_eq!(map_line(no_stage).unwrap_err().message, "audit event without `stage`");
        assert_eq!(map_line("not json").unwrap_err().class, "invalid JSON");
    }
}
