#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into corpus/<target>/.

Each seed is a real input in the layout its target documents at the top of
fuzz_targets/<target>.rs: for api_body, `METHOD\\nBODY` with the request
bodies of docs/api.md for every method (and a few almost right ones); for
config_file, config files (and `\\0`-separated DUPLEX_* variables),
including the file `duplex genconfig` writes and an uncommented copy of it.
Files are named after what they hold; rerunning the script rewrites them
identically, and the files libFuzzer adds next to them (named by content
hash) are left alone.

The genconfig seeds come from the `duplex` binary (target/debug/duplex of
the repository, or the path given with --duplex); their random secrets are
replaced by fixed ones. Without the binary those two seeds are skipped.

Usage: python3 gen_corpus.py [--duplex PATH]   (from anywhere)
"""

import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))


def write(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def api(name, method, body):
    """A request: `body` is JSON-encoded unless it is already text."""
    if not isinstance(body, (str, bytes)):
        body = json.dumps(body, separators=(",", ":"))
    if isinstance(body, str):
        body = body.encode()
    write("api_body", name, method.encode() + b"\n" + body)


def api_seeds():
    api("publish", "publish", {"channel": "news", "data": {"text": "hello"}})
    api("publish_full", "publish", {
        "channel": "chat:lobby", "data": {"n": 1.50, "list": [1, "two", None]},
        "tags": {"kind": "chat"}, "idempotency_key": "k1", "skip_history": True,
    })
    api("publish_raw_numbers", "publish", '{"channel":"news","data":[1e400,-0.0,123456789012345678901234567890]}')
    api("publish_null_data", "publish", {"channel": "news", "data": None})
    api("publish_b64", "publish", {"channel": "news", "b64data": "aGVsbG8="})
    api("publish_no_data", "publish", {"channel": "news"})
    api("publish_bad_channel", "publish", {"channel": "nope:x", "data": 1})
    api("publish_wrong_type", "publish", {"channel": 5, "data": 1})
    api("broadcast", "broadcast", {"channels": ["news", "chat:lobby", "plain:x"], "data": {"text": "hi"}})
    api("broadcast_bad", "broadcast", {"channels": ["news", "", "x:y", "a" * 300], "data": 1})
    api("subscribe", "subscribe", {"user": "1", "channel": "chat:room"})
    api("subscribe_client", "subscribe", {"user": "2", "channel": "news", "client": "c2"})
    api("unsubscribe", "unsubscribe", {"user": "1", "channel": "news"})
    api("disconnect", "disconnect", {"user": "1"})
    api("disconnect_full", "disconnect", {
        "user": "2", "client": "c3", "whitelist": ["c2"], "code": 4001, "reason": "bye",
    })
    api("disconnect_object", "disconnect", {"user": "1", "disconnect": {"code": 3000, "reason": "reconnect"}})
    api("disconnect_bad_code", "disconnect", {"user": "1", "code": 1000})
    api("presence", "presence", {"channel": "news"})
    api("presence_stats", "presence_stats", {"channel": "chat:lobby"})
    api("history", "history", {"channel": "news", "limit": 10})
    api("history_since", "history", {
        "channel": "chat:lobby", "limit": -1, "since": {"offset": 0, "epoch": "x"}, "reverse": True,
    })
    api("history_position", "history", {"channel": "news"})
    api("history_remove", "history_remove", {"channel": "chat:room"})
    api("history_remove_plain", "history_remove", {"channel": "plain:x"})
    api("channels", "channels", {})
    api("channels_pattern", "channels", {"pattern": "{news,chat:*}"})
    api("channels_class", "channels", {"pattern": "chat:[!a-k]o?m\\*"})
    api("info", "info", "")
    api("info_object", "info", {})
    api("batch", "batch", {"commands": [
        {"publish": {"channel": "news", "data": {"n": 1}}},
        {"broadcast": {"channels": ["news", "chat:room"], "data": 2}},
        {"presence": {"channel": "news"}},
        {"history": {"channel": "chat:lobby", "limit": 5}},
        {"channels": {"pattern": "*"}},
        {"info": {}},
        {"rpc": {}},
        {"batch": {}},
        {"publish": {"channel": 1}},
        {},
    ]})
    api("batch_parallel", "batch", {"parallel": True, "commands": [
        {"subscribe": {"user": "1", "channel": "news"}},
        {"unsubscribe": {"user": "1", "channel": "news"}},
        {"disconnect": {"user": "2"}},
        {"presence_stats": {"channel": "chat:room"}},
        {"history_remove": {"channel": "news"}},
    ]})
    api("not_an_object", "publish", "[1,2]")
    api("not_json", "publish", "{\"channel\":")
    api("not_utf8", "publish", b"{\"channel\":\"\xff\"}")
    api("unknown_method", "rpc", {"method": "x"})


TOML_SEEDS = {
    "empty": "",
    "minimal": 'api_key = "k"\ntoken_secret = "s"\nstorage = "memory"\n',
    "top_level": """listen = "0.0.0.0:8000"
data_dir = "/var/lib/duplex"
storage = "sqlite:/var/lib/duplex/h.sqlite3"
broker = "redis://127.0.0.1:6379"
broker_prefix = "duplex-prod"
broker_presence_ttl = "45s"
broker_node_ttl = 20
api_key = "key"
token_secret = "secret"
dev = false
node_name = "node-1"
api_max_body = "2MiB"
shutdown_drain = 2.5
max_connections = 50000
max_connections_per_ip = 100
log_level = "warn,duplex_server=debug"
log_format = "json"
""",
    "client": """[client]
ping_interval = "20s"
pong_timeout = "5s"
connect_timeout = "1m"
max_message_size = 65536
max_subscriptions = 64
max_queue_bytes = "1MB"
allowed_origins = ["https://example.com", "http://localhost:3000"]
max_commands_per_second = 100
""",
    "channel_and_namespaces": """[channel]
presence = true
join_leave = true
history_size = 50
history_ttl = "10m"
history_meta_ttl = "30d"
allow_recovery = true
allow_positioning = true
allow_subscribe_for_client = true

[[namespaces]]
name = "chat"
presence = true
join_leave = true
force_push_join_leave = true
history_size = 100
history_ttl = "1h"
allow_recovery = true
force_recovery = true
allow_publish_for_subscriber = true

[[namespaces]]
name = "public"
allow_subscribe_for_anonymous = true
allow_presence_for_client = true
allow_history_for_client = true
allow_publish_for_client = true
""",
    "inline_tables": """client = { ping_interval = "500ms", max_message_size = "64KiB" }
channel = { presence = true, history_size = 10, history_ttl = "1d" }
namespaces = [{ name = "a.b@c=d,e", presence = true }, { name = "x_y-z" }]
""",
    "public_key_rsa": 'token_public_key = "rsa.pem"\ntoken_algorithm = "RS256"\n',
    "public_key_ec": 'token_public_key = "ec.pem"\n',
    "public_key_mismatch": 'token_public_key = "p384.pem"\ntoken_algorithm = "HS256"\n',
    "public_key_private": 'token_public_key = "private.pem"\n',
    "tls": 'tls_cert = "cert.pem"\ntls_key = "key.pem"\n',
    "problems": """listen = "localhost:99999"
storage = "postgres"
lisen = "x"
api_max_body = 0
shutdown_drain = -1
[client]
ping_interval = "fast"
max_subscriptions = -5
allowed_origins = ["https://a.com/"]
[channel]
force_recovery = true
unknown = 1
[[namespaces]]
name = "chat"
[[namespaces]]
name = "chat"
[[namespaces]]
presence = "yes"
""",
    "syntax_error": 'api_key = "unterminated\n[client\n',
}

ENV_SEEDS = {
    "env_overrides": ('api_key = "file"\n[client]\nping_interval = "25s"\n',
                      "DUPLEX_API_KEY=from-env\nDUPLEX_CLIENT_PING_INTERVAL=10s\n"
                      "DEV=yes\nCLIENT_ALLOWED_ORIGINS=https://a.com, https://b.com\n"
                      "API_MAX_BODY=64KiB\nDUPLEX_UNKNOWN=1\n"),
    "env_problems": ("", "DUPLEX_LISTEN=nowhere\nTOKEN_ALGORITHM=RS256\nMAX_CONNECTIONS=-1\n"),
}


def genconfig(duplex):
    """The file `duplex genconfig` writes, with fixed secrets."""
    if not duplex or not os.access(duplex, os.X_OK):
        print(f"no duplex binary at {duplex}: skipping the genconfig seeds", file=sys.stderr)
        return None
    text = subprocess.run([duplex, "genconfig", "-"], check=True, capture_output=True, text=True).stdout
    text = re.sub(r'^api_key = ".*"$', 'api_key = "fuzz-api-key"', text, flags=re.M)
    return re.sub(r'^token_secret = ".*"$', 'token_secret = "fuzz-token-secret"', text, flags=re.M)


def config_seeds(duplex):
    for name, text in TOML_SEEDS.items():
        write("config_file", name + ".toml", text)
    for name, (text, env) in ENV_SEEDS.items():
        write("config_file", name, text + "\0" + env)
    template = genconfig(duplex)
    if template is not None:
        write("config_file", "genconfig.toml", template)
        # Every default shown, not commented out (as `genconfig` invites),
        # minus the example broker and TLS files.
        lines = []
        for line in template.splitlines():
            m = re.match(r"^#(\[|[a-z_]+ = )", line)
            if m and not line.startswith(("#broker =", "#tls_", "#token_public_key", "#token_algorithm")):
                line = line[1:]
            lines.append(line)
        write("config_file", "genconfig_uncommented.toml", "\n".join(lines) + "\n")


def main():
    duplex = os.path.join(ROOT, "target", "debug", "duplex")
    if len(sys.argv) == 3 and sys.argv[1] == "--duplex":
        duplex = sys.argv[2]
    elif len(sys.argv) != 1:
        sys.exit(__doc__)
    api_seeds()
    config_seeds(duplex)


if __name__ == "__main__":
    main()
