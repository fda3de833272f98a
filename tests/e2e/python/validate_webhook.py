"""Validates a webhook request Herald made with the official Python `pusher` SDK's own
validator, for tests/e2e/webhooks.test.mjs. Reads {app_id, key, secret, header_key, signature,
body} as JSON on stdin; prints {"events": …} from the validated body, or {"events": null}."""

import json
import sys

import pusher

given = json.load(sys.stdin)
client = pusher.Pusher(app_id=given["app_id"], key=given["key"], secret=given["secret"])
valid = client.validate_webhook(given["header_key"], given["signature"], given["body"])
tampered = client.validate_webhook(given["header_key"], given["signature"], given["body"] + " ")
print(json.dumps({"events": valid["events"] if valid else None, "tampered": tampered}))
