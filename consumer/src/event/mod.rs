//! Decoding one SQS message body into what it means: uploads to transcode, S3's test message,
//! or an S3 event that is not an upload.
//!
//! Three routes bring S3 events to the queue, and each leaves a different body:
//!
//! - S3 -> SQS: S3's own `{"Records":[...]}` notification, or once per configuration its
//!   `s3:TestEvent`.
//! - S3 -> SNS -> SQS without raw delivery: an SNS envelope whose `Message` is one of the above
//!   as a JSON *string*. With raw delivery on, the body is the inner message itself.
//! - S3 -> EventBridge -> SQS: an EventBridge event with `"source":"aws.s3"`.
//!
//! [`decode_message`] tells them apart by their fields, never by configuration, so the queue can
//! be rewired without touching the consumer. It is pure: no AWS calls, no I/O, no panics on any
//! input; an unusable message is an `Err` for the caller to log and leave to the redrive policy.

mod encode;
mod error;
mod eventbridge;
mod filter;
#[cfg(test)]
mod fuzz;
mod key;
mod s3;
mod sns;

pub use encode::single_upload_notification;
pub(crate) use error::{one_line, quoted};
pub use error::{DecodeError, Form};
pub use filter::Filters;

use serde_json::Value;

/// One object upload to transcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The bucket that holds the object.
    pub bucket: String,
    /// The object key, decoded: exactly as S3 stores it, ready for GetObject. It is not a path:
    /// it may hold spaces, `+`, `..`, `//` or control characters, so sanitise it before building
    /// a file name from it.
    pub key: String,
    /// Object size in bytes, when the event carries it.
    pub size: Option<u64>,
    /// The object's ETag as the event gives it. Both forms send it bare, without the double
    /// quotes that HeadObject returns (and that the transcoder's manifests keep), so trim the
    /// quotes before comparing the two.
    pub etag: Option<String>,
    /// The event's name: `ObjectCreated:Put`, `ObjectCreated:CompleteMultipartUpload`… for S3
    /// notifications, `Object Created` for EventBridge.
    pub event_name: String,
    /// When S3 finished the request (ISO-8601, as the event wrote it), when the event says.
    pub event_time: Option<String>,
}

/// What a message means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// One or more uploads (a Records[] message may hold several).
    Uploads(Vec<Upload>),
    /// S3's s3:TestEvent, sent when a notification is configured: nothing to do, delete it.
    TestEvent,
    /// A real S3 notification of something that is not an object creation (ObjectRemoved,
    /// Restore...): nothing to do, delete it. The reason names the event.
    Ignored {
        /// One line naming the event(s), for the log.
        reason: String,
    },
}

/// Decodes one SQS message body.
///
/// Accepts S3's `Records[]` notification and its `s3:TestEvent`, either bare or inside an SNS
/// envelope, and S3 events from EventBridge. Any other body, or a known shape with a record that
/// cannot be used, is a [`DecodeError`] whose message is one line and quotes little of the body.
pub fn decode_message(body: &str) -> Result<Decoded, DecodeError> {
    decode(body, Layer::Body)
}

/// Which text is being decoded: the SQS body, or the `Message` string of an SNS envelope in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Body,
    SnsMessage,
}

impl Layer {
    fn what(self) -> &'static str {
        match self {
            Layer::Body => "message body",
            Layer::SnsMessage => "SNS Message",
        }
    }
}

fn decode(text: &str, layer: Layer) -> Result<Decoded, DecodeError> {
    let what = layer.what();
    // serde_json limits nesting depth itself, so hostile `[[[[...` is an Err, not a stack overflow.
    let value: Value =
        serde_json::from_str(text).map_err(|e| DecodeError::not_json(what, text, &e))?;
    let Some(obj) = value.as_object() else {
        let kind = json_kind(&value);
        return Err(DecodeError::unknown_shape(
            what,
            text,
            format!("a JSON {kind}, not an object"),
        ));
    };

    if let Some(records) = obj.get("Records") {
        return s3::decode_records(records);
    }
    if s3::is_test_event(obj) {
        return Ok(Decoded::TestEvent);
    }
    if sns::is_sns(obj) {
        // SNS never wraps its own envelopes; refusing a second layer also bounds the recursion.
        if layer == Layer::SnsMessage {
            return Err(DecodeError::unknown_shape(
                what,
                text,
                "an SNS envelope inside an SNS envelope",
            ));
        }
        let message = sns::sns_message(&value, what, text)?;
        return decode(&message, Layer::SnsMessage);
    }
    if eventbridge::is_eventbridge(obj) {
        return eventbridge::decode_eventbridge(&value, what, text);
    }
    Err(DecodeError::unknown_shape(
        what,
        text,
        "not S3 Records[], an s3:TestEvent, an SNS envelope or an EventBridge event",
    ))
}

/// The JSON type of `value`, for messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUT: &str = include_str!("testdata/s3_put_v2_1.json");

    /// Bodies no sender should produce. Each must come back as an `Err` or a sensible
    /// `Decoded`, without panicking, and any error must be one short line.
    fn malformed() -> Vec<String> {
        let huge_digits = "9".repeat(400);
        // Hand-written bad bodies live in a JSON array of strings; generated ones are added here.
        let mut bodies: Vec<String> =
            serde_json::from_str(include_str!("testdata/malformed_bodies.json")).unwrap();

        bodies.push(format!("{{\"Records\":[{{\"eventSource\":\"aws:s3\",\"eventName\":\"ObjectCreated:Put\",\"s3\":{{\"bucket\":{{\"name\":\"b\"}},\"object\":{{\"key\":\"k\",\"size\":{huge_digits}}}}}}}]}}"));
        bodies.push(format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)));
        bodies.push(format!("{}1{}", "{\"a\":".repeat(5_000), "}".repeat(5_000)));
        bodies.push(format!("{{\"Records\":[{}]}}", vec!["{}"; 1000].join(",")));
        bodies.push("x".repeat(300_000));
        bodies.push(format!(
            "{{\"junk\":\"{}\\n{}\"}}",
            "é".repeat(500),
            "z".repeat(500)
        ));
        // Every prefix of a real body: truncation anywhere.
        for end in (0..PUT.len()).step_by(7) {
            if PUT.is_char_boundary(end) {
                bodies.push(PUT[..end].to_string());
            }
        }
        // A real body inside an SNS envelope, with its Message string cut short.
        let env = include_str!("testdata/sns_s3_put.json");
        let mut v: Value = serde_json::from_str(env).unwrap();
        let inner = v["Message"].as_str().unwrap().to_string();
        v["Message"] = inner[..inner.len() / 2].into();
        bodies.push(v.to_string());
        bodies
    }

    #[test]
    fn malformed_bodies_never_panic() {
        let bodies = malformed();
        assert!(bodies.len() > 60);
        for body in &bodies {
            let short: String = body.chars().take(80).collect();
            let got = std::panic::catch_unwind(|| decode_message(body));
            let got = got.unwrap_or_else(|_| panic!("panicked on {short:?}"));
            match got {
                Ok(Decoded::Uploads(uploads)) => {
                    assert!(!uploads.is_empty(), "empty Uploads for {short:?}");
                    for u in uploads {
                        assert!(!u.bucket.is_empty() && !u.key.is_empty(), "{short:?}");
                    }
                }
                Ok(Decoded::TestEvent) | Ok(Decoded::Ignored { .. }) => {}
                Err(err) => assert_short_line(&err),
            }
        }
    }

    #[test]
    fn malformed_bodies_that_mean_something() {
        // The few malformed bodies above that still have a meaning, and what it is.
        let ignored = |reason: &str| {
            Ok(Decoded::Ignored {
                reason: reason.into(),
            })
        };
        let cases: &[(&str, Result<Decoded, ()>)] = &[
            ("{\"Event\":\"s3:TestEvent\"}", Ok(Decoded::TestEvent)),
            (
                "{\"detail-type\":\"Object Deleted\",\"source\":\"aws.s3\"}",
                ignored("EventBridge \"Object Deleted\" event is not an object creation"),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(decode_message(body).map_err(|_| ()), *want, "{body}");
        }
    }

    #[test]
    fn errors_name_their_kind() {
        fn kind(e: &DecodeError) -> String {
            match e {
                DecodeError::NotJson { what, .. } => format!("NotJson({what})"),
                DecodeError::UnknownShape { what, .. } => format!("UnknownShape({what})"),
                DecodeError::Broken { form, .. } => format!("Broken({form})"),
            }
        }
        let cases: &[(&str, &str)] = &[
            ("", "NotJson(message body)"),
            ("not json", "NotJson(message body)"),
            ("[1,2]", "UnknownShape(message body)"),
            ("{\"hello\":1}", "UnknownShape(message body)"),
            ("{\"Records\":{}}", "Broken(S3 Records[])"),
            ("{\"Records\":[]}", "Broken(S3 Records[])"),
            ("{\"Type\":\"Notification\"}", "Broken(SNS envelope)"),
            (
                "{\"Type\":\"Notification\",\"Message\":\"nope\"}",
                "NotJson(SNS Message)",
            ),
            (
                "{\"Type\":\"Notification\",\"Message\":\"[]\"}",
                "UnknownShape(SNS Message)",
            ),
            (
                "{\"detail-type\":\"Object Created\",\"source\":\"aws.s3\"}",
                "Broken(EventBridge S3)",
            ),
        ];
        for (body, want) in cases {
            let err = decode_message(body).unwrap_err();
            assert_eq!(kind(&err), *want, "{body:?} gave {err}");
        }
    }

    #[test]
    fn error_messages_are_one_short_line() {
        let key = format!("{}%ZZ\n{}", "k".repeat(5000), "z".repeat(5000));
        let bad_key = PUT.replace("HappyFace.jpg", &key.replace('\n', "\\n"));
        let long_garbage = format!("{}\n{}", "garbage ".repeat(1000), "more".repeat(1000));
        let long_json = format!("{{\"x\":\"{}\"}}", "y".repeat(10_000));
        let long_type = format!("{{\"Type\":\"{}\",\"Message\":\"\"}}", "T".repeat(5000));
        for body in [bad_key, long_garbage, long_json, long_type] {
            let err = decode_message(&body).unwrap_err();
            assert_short_line(&err);
        }
        let err = decode_message("{\"a\":1,\n\"b\":}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "message body is not JSON (expected value at line 2 column 5); it starts \"{\\\"a\\\":1,\\n\\\"b\\\":}\""
        );
    }

    fn assert_short_line(err: &DecodeError) {
        let msg = err.to_string();
        assert!(
            !msg.contains('\n') && !msg.contains('\r'),
            "not one line: {msg}"
        );
        assert!(
            msg.chars().count() <= 300,
            "too long ({}): {msg}",
            msg.chars().count()
        );
    }
}
