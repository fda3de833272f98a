//! A stored presence member: laravel-echo-server's `{user_id, user_info, socketId}`.

use crate::hub::{Member, user_id_text};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;

/// One socket's presence in a channel, in laravel-echo-server's stored JSON shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberEntry {
    /// The app's user id (number or string, as the app sent it).
    pub user_id: Value,
    /// What the channel callback returned about the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_info: Option<Value>,
    /// The socket this entry belongs to.
    #[serde(rename = "socketId")]
    pub socket_id: String,
    /// The Herald process holding the socket (empty in lists written by laravel-echo-server or
    /// an older Herald: such entries belong to no running node).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
}

impl MemberEntry {
    /// From the auth answer's `channel_data`, for a socket of `node`; `None` without a usable
    /// `user_id`.
    pub fn from_channel_data(
        channel_data: &Value,
        socket_id: &str,
        node: &str,
    ) -> Option<MemberEntry> {
        let user_id = channel_data.get("user_id")?;
        if !matches!(user_id, Value::String(_) | Value::Number(_)) {
            return None;
        }
        Some(MemberEntry {
            user_id: user_id.clone(),
            user_info: channel_data.get("user_info").cloned(),
            socket_id: socket_id.to_owned(),
            node: node.to_owned(),
        })
    }

    /// The member as other clients see it (`presence:subscribed`, `presence:joining`,
    /// `presence:leaving`): `user_id` and `user_info`, never the socket id, which would let a
    /// member act for another's session (docs/security.md).
    pub fn public(&self) -> Member {
        Member {
            user_id: self.user_id.clone(),
            user_info: self.user_info.clone(),
        }
    }

    /// The user id as text, for comparisons (`1` and `"1"` are the same user, as in the
    /// original's loose `==`).
    pub fn user_key(&self) -> String {
        user_id_text(&self.user_id)
    }
}

/// A stored list as text → entries. A list another program wrote badly counts as empty rather
/// than as an outage of the store.
pub fn decode_members(stored: Option<String>) -> Vec<MemberEntry> {
    stored
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Whether two user ids denote the same user.
pub fn same_user(a: &Value, b: &Value) -> bool {
    user_id_text(a) == user_id_text(b)
}

/// Keeps the first entry of each user, in order.
pub fn dedupe_by_user<'a>(entries: impl Iterator<Item = &'a MemberEntry>) -> Vec<MemberEntry> {
    let mut seen = HashSet::new();
    entries
        .filter(|e| seen.insert(e.user_key()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_shape_is_laravel_echo_servers() {
        let m = MemberEntry::from_channel_data(
            &json!({"user_id": 1, "user_info": {"name": "A"}}),
            "s1",
            "n1",
        )
        .expect("member");
        assert_eq!(
            serde_json::to_value(&m).expect("json"),
            json!({"user_id": 1, "user_info": {"name": "A"}, "socketId": "s1", "node": "n1"})
        );
        let public = serde_json::to_value(m.public()).expect("json");
        assert_eq!(public, json!({"user_id": 1, "user_info": {"name": "A"}}));
    }

    #[test]
    fn user_ids_compare_loosely_and_must_exist() {
        assert!(same_user(&json!(1), &json!("1")));
        assert!(!same_user(&json!(1), &json!(2)));
        assert!(MemberEntry::from_channel_data(&json!({"user_info": {}}), "s", "n").is_none());
        assert!(MemberEntry::from_channel_data(&json!({"user_id": null}), "s", "n").is_none());
        assert!(MemberEntry::from_channel_data(&json!(true), "s", "n").is_none());
    }

    #[test]
    fn dedupe_keeps_first_per_user() {
        let a1 = MemberEntry::from_channel_data(&json!({"user_id": 1}), "a1", "n").expect("m");
        let b = MemberEntry::from_channel_data(&json!({"user_id": 2}), "b", "n").expect("m");
        let a2 = MemberEntry::from_channel_data(&json!({"user_id": "1"}), "a2", "n").expect("m");
        let out = dedupe_by_user([a2.clone(), b.clone(), a1].iter());
        assert_eq!(out, vec![a2, b]);
    }
}
