//! Deep merge of a config file over the defaults.

use serde_json::Value;

/// Merges `overlay` into `base`: objects merge key by key at every depth, anything else replaces.
///
/// laravel-echo-server merged only the top level, so `"subscribers": {"http": false}` silently
/// turned the Redis subscriber off too. Herald merges deeply; see docs/compatibility.md.
pub fn deep_merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(slot) => deep_merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (slot, value) => *slot = value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_objects_keep_the_keys_the_file_does_not_name() {
        let mut base = json!({"subscribers": {"http": true, "redis": true}, "port": "6001"});
        deep_merge(&mut base, json!({"subscribers": {"http": false}}));
        assert_eq!(
            base,
            json!({"subscribers": {"http": false, "redis": true}, "port": "6001"})
        );
    }

    #[test]
    fn arrays_and_scalars_replace() {
        let mut base = json!({"clients": [{"appId": "a"}], "host": null});
        deep_merge(&mut base, json!({"clients": [], "host": "0.0.0.0"}));
        assert_eq!(base, json!({"clients": [], "host": "0.0.0.0"}));
    }

    #[test]
    fn an_object_replaces_a_scalar_and_back() {
        let mut base = json!({"socketio": {}, "authHost": "http://a"});
        deep_merge(&mut base, json!({"socketio": null, "authHost": {"x": 1}}));
        assert_eq!(base, json!({"socketio": null, "authHost": {"x": 1}}));
    }
}
