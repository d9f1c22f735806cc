//! The HTTP long-polling transport: a GET waits for packets and returns them
//! as one payload; a POST carries packets from the client.

use std::sync::Arc;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use engineio_proto::{payload, EngineError};
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;

use crate::engine::{error_response, Inner, ResponseBody};
use crate::socket::{CloseReason, Session, TransportKind};
use crate::{Handler, SharedFrame};

/// Packets as a polling payload: text packets as they are, binary ones as
/// `b` + base64, separated by the record separator.
pub(crate) fn payload_response(frames: &[SharedFrame]) -> Response<ResponseBody> {
    let mut body = BytesMut::new();
    for (i, frame) in frames.iter().enumerate() {
        if i > 0 {
            body.extend_from_slice(&[payload::RECORD_SEPARATOR]);
        }
        if frame.is_text() {
            body.extend_from_slice(frame.payload());
        } else {
            body.extend_from_slice(b"b");
            body.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(frame.payload())
                    .as_bytes(),
            );
        }
    }
    let mut response = Response::new(Full::new(body.freeze()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    response
}

/// Clears `poll_active` however the poll ends (even if the request is
/// dropped).
struct PollGuard(Arc<Session>);

impl Drop for PollGuard {
    fn drop(&mut self) {
        self.0.lock().poll_active = false;
    }
}

/// A GET: answer with what is queued, or wait until something is.
pub(crate) async fn poll<H: Handler>(
    inner: &Arc<Inner<H>>,
    session: Arc<Session>,
) -> Response<ResponseBody> {
    {
        let mut state = session.lock();
        if state.poll_active {
            // Two polls at once break the protocol: end the session.
            drop(state);
            inner.close_session(&session, CloseReason::TransportError);
            return error_response(EngineError::BadRequest);
        }
        state.poll_active = true;
    }
    let _guard = PollGuard(session.clone());
    loop {
        let notified = session.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut state = session.lock();
            if let Some(reason) = state.closed {
                // The client's own close packet releases the poll with a
                // noop, as the reference server does. A server-side close
                // first delivers what was queued before it (a Socket.IO
                // DISCONNECT, say) and only the poll after that gets the
                // close packet, as the reference server does (it closes
                // once the buffer has drained): socket.io-client handles
                // packets a tick late, so a close packet in the same payload
                // would overtake the DISCONNECT. The session was kept for
                // these polls and goes with the close packet.
                if reason == CloseReason::TransportClose {
                    return payload_response(&[SharedFrame::text("6")]);
                }
                if !state.queue.is_empty() {
                    let frames: Vec<SharedFrame> = state.queue.drain(..).collect();
                    return payload_response(&frames);
                }
                drop(state);
                inner.forget_session(&session);
                return payload_response(&[SharedFrame::text("1")]);
            }
            if state.noop_pending || state.transport != TransportKind::Polling {
                state.noop_pending = false;
                return payload_response(&[SharedFrame::text("6")]);
            }
            if !state.queue.is_empty() {
                let frames: Vec<SharedFrame> = state.queue.drain(..).collect();
                return payload_response(&frames);
            }
        }
        notified.await;
    }
}

/// A POST: decode the payload and hand each packet to the engine.
pub(crate) async fn post<H, B>(
    inner: &Arc<Inner<H>>,
    session: Arc<Session>,
    body: B,
) -> Response<ResponseBody>
where
    H: Handler,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if session.is_closed() {
        // Kept only so its last poll can carry the close packet.
        return error_response(EngineError::UnknownSid);
    }
    let limit = inner.config.max_payload;
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            inner.close_session(&session, CloseReason::TransportError);
            return if e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                status_response(StatusCode::PAYLOAD_TOO_LARGE, "payload too large")
            } else {
                error_response(EngineError::BadRequest)
            };
        }
    };
    let limits = payload::Limits::new(limit);
    match payload::decode(&body, limits) {
        Ok(packets) => {
            for packet in packets {
                inner.on_packet(&session, packet);
            }
            let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            response
        }
        Err(engineio_proto::Error::PayloadTooLarge { .. }) => {
            inner.close_session(&session, CloseReason::TransportError);
            status_response(StatusCode::PAYLOAD_TOO_LARGE, "payload too large")
        }
        Err(_) => {
            inner.close_session(&session, CloseReason::ParseError);
            error_response(EngineError::BadRequest)
        }
    }
}

fn status_response(status: StatusCode, text: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}
