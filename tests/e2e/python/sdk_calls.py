"""Calls Herald's signed HTTP API with the official Python `pusher` SDK (pinned in
requirements.txt) and prints what each call returned, as JSON, for tests/e2e/pusher.test.mjs."""

import json
import sys

import pusher

host, port, app_id, key, secret, socket_id = sys.argv[1:7]
client = pusher.Pusher(app_id=app_id, key=key, secret=secret, host=host, port=int(port), ssl=False)
results = {
    "trigger": client.trigger(["python-sdk"], "FromPython", {"n": 1}),
    "trigger_excluding": client.trigger("python-sdk", "FromPython", {"n": 2}, socket_id=socket_id),
    "batch": client.trigger_batch([
        {"channel": "python-sdk", "name": "FromPython", "data": json.dumps({"n": 3})},
    ]),
    "channels": client.channels_info(prefix_filter="presence-", attributes=["user_count"]),
    "channel": client.channel_info("python-sdk", ["subscription_count"]),
    "users": client.users_info("presence-python"),
}
try:
    pusher.Pusher(app_id=app_id, key=key, secret="wrong", host=host, port=int(port), ssl=False).trigger("x", "E", {})
    results["wrong_secret"] = "accepted"
except Exception as error:  # the SDK raises on a non-2xx answer
    results["wrong_secret"] = f"{type(error).__name__}: {error}"
print(json.dumps(results))
