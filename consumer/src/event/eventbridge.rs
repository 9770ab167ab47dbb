//! Amazon EventBridge events from S3: how S3 -> EventBridge -> SQS arrives (the rule's target
//! gets the event as it stands, unless the rule transforms it).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::{one_line, quoted, DecodeError, Form, ECHO_CHARS};
use super::{Decoded, Upload};

/// True for an EventBridge event, whatever its source: only EventBridge uses `detail-type`.
pub(super) fn is_eventbridge(obj: &Map<String, Value>) -> bool {
    obj.contains_key("detail-type")
}

// `expecting` makes serde's complaints name the JSON, not these Rust types.
#[derive(Deserialize)]
#[serde(expecting = "an EventBridge event object")]
struct EventHead {
    #[serde(rename = "detail-type")]
    detail_type: String,
}

/// An "Object Created" event, as in the S3 User Guide, "EventBridge event message structure"
/// (docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html).
#[derive(Deserialize)]
#[serde(expecting = "an EventBridge event object")]
struct CreatedEvent {
    time: Option<String>,
    detail: Option<Detail>,
}

#[derive(Deserialize)]
#[serde(expecting = "detail to be an object")]
struct Detail {
    bucket: Option<Bucket>,
    object: Option<Object>,
}

#[derive(Deserialize)]
#[serde(expecting = "detail.bucket to be an object")]
struct Bucket {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "detail.object to be an object")]
struct Object {
    key: Option<String>,
    size: Option<u64>,
    etag: Option<String>,
}

/// The EventBridge detail-type for uploads; S3 maps every `ObjectCreated:*` to it.
const OBJECT_CREATED: &str = "Object Created";

/// Decodes an EventBridge event (one with a `detail-type`).
pub(super) fn decode_eventbridge(
    value: &Value,
    what: &'static str,
    text: &str,
) -> Result<Decoded, DecodeError> {
    let source = value.get("source").and_then(Value::as_str).unwrap_or("");
    if source != "aws.s3" {
        // Another service's event: a rule that sends it here is misconfigured; keep it visible.
        return Err(DecodeError::unknown_shape(
            what,
            text,
            format!(
                "an EventBridge event from source {}, not aws.s3",
                quoted(source, 40)
            ),
        ));
    }
    let head = EventHead::deserialize(value).map_err(|e| broken(&e))?;
    if head.detail_type != OBJECT_CREATED {
        return Ok(Decoded::Ignored {
            reason: format!(
                "EventBridge {} event is not an object creation",
                quoted(&head.detail_type, 60)
            ),
        });
    }

    let event = CreatedEvent::deserialize(value).map_err(|e| broken(&e))?;
    let missing = |field: &str| DecodeError::Broken {
        form: Form::EventBridge,
        reason: format!("no {field}"),
    };
    let detail = event.detail.ok_or_else(|| missing("detail"))?;
    let bucket = detail
        .bucket
        .and_then(|b| b.name)
        .filter(|name| !name.is_empty())
        .ok_or_else(|| missing("detail.bucket.name"))?;
    let object = detail.object.ok_or_else(|| missing("detail.object"))?;
    // The key is taken as it stands, NOT form-decoded like a Records[] key. AWS's own page on
    // this form (S3 User Guide, "EventBridge event message structure", ev-events.html) does not
    // say either way: it says nothing about encoding, and its only examples use "example-key".
    // Evidence elsewhere disagrees: aws-solutions-library-samples/guidance-for-medialake-on-aws
    // PR #21 reports EventBridge keys arriving unencoded (tested with `test+b.png` and
    // `%2B%20%%%.png`) and removed its decoding, while Powertools for AWS Lambda (Python)
    // unquote_plus()es `detail.object.key`. We follow the tested report; if AWS documents
    // otherwise, decode here with `super::key::decode_form_key` and flip the pinning test.
    let key = object
        .key
        .filter(|key| !key.is_empty())
        .ok_or_else(|| missing("detail.object.key"))?;
    Ok(Decoded::Uploads(vec![Upload {
        bucket,
        key,
        size: object.size,
        etag: object.etag,
        event_name: OBJECT_CREATED.to_string(),
        event_time: event.time,
    }]))
}

fn broken(err: &serde_json::Error) -> DecodeError {
    DecodeError::Broken {
        form: Form::EventBridge,
        reason: one_line(&err.to_string(), ECHO_CHARS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::decode_message;

    const CREATED: &str = include_str!("testdata/eventbridge_object_created.json");
    const DELETED: &str = include_str!("testdata/eventbridge_object_deleted.json");
    const RESTORED: &str = include_str!("testdata/eventbridge_restore_completed.json");

    fn example_key() -> Upload {
        Upload {
            bucket: "amzn-s3-demo-bucket1".into(),
            key: "example-key".into(),
            size: Some(5),
            etag: Some("b1946ac92492d2347c6235b4d2611184".into()),
            event_name: "Object Created".into(),
            event_time: Some("2021-11-12T00:00:00Z".into()),
        }
    }

    #[test]
    fn documented_eventbridge_examples() {
        let cases: &[(&str, Decoded)] = &[
            (CREATED, Decoded::Uploads(vec![example_key()])),
            (
                DELETED,
                Decoded::Ignored {
                    reason: "EventBridge \"Object Deleted\" event is not an object creation".into(),
                },
            ),
            (
                RESTORED,
                Decoded::Ignored {
                    reason:
                        "EventBridge \"Object Restore Completed\" event is not an object creation"
                            .into(),
                },
            ),
        ];
        for (body, want) in cases {
            assert_eq!(decode_message(body).as_ref(), Ok(want));
        }
    }

    #[test]
    fn eventbridge_keys_are_taken_verbatim() {
        // Pins the choice explained in decode_eventbridge: no `+`-to-space, no %-decoding.
        let cases: &[&str] = &[
            "test+b.png",
            "my clip+1 été.mp4",
            "100%.mp4",
            "a%2Bb.mp4",
            "uploads/2024/01/team a/../take 1.mov",
            "日本/🎬.mp4",
        ];
        for key in cases {
            let mut v: Value = serde_json::from_str(CREATED).unwrap();
            v["detail"]["object"]["key"] = (*key).into();
            let want = Upload {
                key: (*key).into(),
                ..example_key()
            };
            assert_eq!(
                decode_message(&v.to_string()),
                Ok(Decoded::Uploads(vec![want]))
            );
        }
    }

    #[test]
    fn broken_or_foreign_eventbridge() {
        let v: Value = serde_json::from_str(CREATED).unwrap();
        let edit = |f: &dyn Fn(&mut Value)| {
            let mut v = v.clone();
            f(&mut v);
            v.to_string()
        };
        let broken: &[(String, &str)] = &[
            (edit(&|v| v["detail"] = Value::Null), "no detail"),
            (
                edit(&|v| v["detail"]["bucket"] = Value::Null),
                "no detail.bucket.name",
            ),
            (
                edit(&|v| v["detail"]["object"]["key"] = "".into()),
                "no detail.object.key",
            ),
            (
                edit(&|v| v["detail"]["object"] = Value::Null),
                "no detail.object",
            ),
            (
                edit(&|v| v["detail-type"] = 7.into()),
                "invalid type: integer `7`, expected a string",
            ),
            (
                edit(&|v| v["detail"] = "x".into()),
                "invalid type: string \"x\", expected detail to be an object",
            ),
            (
                edit(&|v| v["detail"]["object"]["size"] = 1.5.into()),
                "invalid type: floating point `1.5`, expected u64",
            ),
        ];
        for (body, reason) in broken {
            let want = DecodeError::Broken {
                form: Form::EventBridge,
                reason: (*reason).into(),
            };
            assert_eq!(decode_message(body), Err(want), "body {body}");
        }
        let foreign = edit(&|v| v["source"] = "aws.ec2".into());
        assert!(matches!(
            decode_message(&foreign),
            Err(DecodeError::UnknownShape { reason, .. }) if reason.contains("\"aws.ec2\", not aws.s3")
        ));
    }
}
