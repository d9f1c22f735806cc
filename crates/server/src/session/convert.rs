//! Turning the hub's values into what clients see: `centrifuge-proto`
//! types for the plain WebSocket protocol, and JSON values for Socket.IO
//! (which shows clients the same objects).
//!
//! Owns the mapping only; wire framing is `centrifuge-proto`'s and the
//! transports'. Payloads stay raw JSON: they are validated once (the hub
//! keeps bytes) and spliced, never re-serialized.

use std::collections::BTreeMap;

use bytes::Bytes;
use centrifuge_proto as proto;
use serde_json::value::RawValue;

/// A raw JSON payload as `RawJson`. The hub only ever stores what a
/// client or the API sent as JSON; should anything else reach it, the
/// subscriber sees it as a JSON string rather than a broken frame.
pub(crate) fn raw_json(bytes: &Bytes) -> proto::RawJson {
    match proto::RawJson::from_bytes(bytes.clone()) {
        Ok(raw) => raw,
        Err(_) => {
            tracing::warn!("payload is not JSON; sent as a string");
            proto::RawJson::from_value(&serde_json::Value::String(
                String::from_utf8_lossy(bytes).into_owned(),
            ))
        }
    }
}

/// The hub's client info as the protocol's.
pub(crate) fn client_info(info: &hub::ClientInfo) -> proto::ClientInfo {
    proto::ClientInfo {
        user: info.user.to_string(),
        client: info.client.to_string(),
        conn_info: info.conn_info.as_ref().map(raw_json),
        chan_info: info.chan_info.as_ref().map(raw_json),
    }
}

/// A stored publication as the protocol's.
pub(crate) fn publication(p: &hub::Publication) -> proto::Publication {
    proto::Publication {
        data: raw_json(&p.data),
        info: p.info.as_ref().map(client_info),
        offset: p.offset,
        tags: p.tags.clone(),
        delta: false,
        time: 0,
    }
}

/// The JSON of one result object, as the plain protocol would put it
/// under the method's key: `{"epoch":"...","offset":3}` for a subscribe.
/// Socket.IO acks carry exactly this.
pub(crate) fn result_json(result: &proto::ReplyResult) -> Box<RawValue> {
    let mut text = String::new();
    // With id 0 the reply is `{"<method>":RESULT}`: cut RESULT out.
    proto::encode_reply(&mut text, 0, result);
    let prefix_len = result.method().as_str().len() + 4; // {"m":
    let inner = text
        .get(prefix_len..text.len().saturating_sub(1))
        .unwrap_or("{}");
    // The encoder writes valid JSON; `null` stands in should it ever not.
    RawValue::from_string(inner.to_owned()).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// JSON string literal of `s`.
fn json_str(out: &mut String, s: &str) {
    match serde_json::to_string(s) {
        Ok(text) => out.push_str(&text),
        Err(_) => out.push_str("\"\""),
    }
}

/// Writes a client info object `{"user":..,"client":..,"conn_info":..,"chan_info":..}`.
pub(crate) fn write_info(out: &mut String, info: &hub::ClientInfo) {
    out.push_str("{\"user\":");
    json_str(out, &info.user);
    out.push_str(",\"client\":");
    json_str(out, &info.client);
    if let Some(ci) = &info.conn_info {
        out.push_str(",\"conn_info\":");
        out.push_str(raw_json(ci).as_str());
    }
    if let Some(ci) = &info.chan_info {
        out.push_str(",\"chan_info\":");
        out.push_str(raw_json(ci).as_str());
    }
    out.push('}');
}

/// The Socket.IO `publication` event's object: `{channel, offset, data,
/// info?, tags?}` (offset left out when the channel keeps no history).
pub(crate) fn sio_publication(channel: &str, p: &hub::Publication) -> String {
    let data = raw_json(&p.data);
    let mut out = String::with_capacity(data.len() + channel.len() + 64);
    out.push_str("{\"channel\":");
    json_str(&mut out, channel);
    if p.offset > 0 {
        out.push_str(",\"offset\":");
        out.push_str(&p.offset.to_string());
    }
    out.push_str(",\"data\":");
    out.push_str(data.as_str());
    if let Some(info) = &p.info {
        out.push_str(",\"info\":");
        write_info(&mut out, info);
    }
    if !p.tags.is_empty() {
        out.push_str(",\"tags\":");
        out.push_str(&tags_json(&p.tags));
    }
    out.push('}');
    out
}

fn tags_json(tags: &BTreeMap<String, String>) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "{}".to_owned())
}

/// The Socket.IO `join` / `leave` event's object: `{channel, info}`.
pub(crate) fn sio_join_leave(channel: &str, info: &hub::ClientInfo) -> String {
    let mut out = String::with_capacity(channel.len() + 96);
    out.push_str("{\"channel\":");
    json_str(&mut out, channel);
    out.push_str(",\"info\":");
    write_info(&mut out, info);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_json_cuts_the_result_out() {
        let r = proto::ReplyResult::Subscribe(proto::SubscribeResult {
            epoch: "e".into(),
            offset: 3,
            recoverable: true,
            ..Default::default()
        });
        assert_eq!(
            result_json(&r).get(),
            r#"{"recoverable":true,"epoch":"e","offset":3}"#
        );
        assert_eq!(result_json(&proto::ReplyResult::Publish).get(), "{}");
        let s = proto::ReplyResult::PresenceStats(proto::PresenceStatsResult {
            num_clients: 2,
            num_users: 1,
        });
        assert_eq!(result_json(&s).get(), r#"{"num_clients":2,"num_users":1}"#);
    }

    #[test]
    fn socketio_objects() {
        let mut info = hub::ClientInfo::new("42", "c\"1");
        info.conn_info = Some(Bytes::from_static(br#"{"name":"Ann"}"#));
        let p = hub::Publication {
            offset: 7,
            info: Some(info.clone()),
            ..hub::Publication::new(Bytes::from_static(br#"{"text":"hi"}"#))
        };
        let text = sio_publication("chat", &p);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"channel":"chat","offset":7,"data":{"text":"hi"},
                "info":{"user":"42","client":"c\"1","conn_info":{"name":"Ann"}}})
        );
        let v: serde_json::Value = serde_json::from_str(&sio_join_leave("chat", &info)).unwrap();
        assert_eq!(v["info"]["client"], "c\"1");
        let bad = hub::Publication::new(Bytes::from_static(b"not json"));
        let v: serde_json::Value = serde_json::from_str(&sio_publication("c", &bad)).unwrap();
        assert_eq!(v["data"], "not json");
        assert!(v.get("offset").is_none());
    }
}
