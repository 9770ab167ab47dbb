//! S3's own notification, `{"Records":[...]}`, and the `s3:TestEvent` it sends when a
//! notification configuration is saved.
//!
//! Field names and meanings follow the S3 User Guide, "Event message structure"
//! (docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::{one_line, DecodeError, Form, ECHO_CHARS};
use super::Decoded;

mod record;

/// True for S3's test message, `{"Service":"Amazon S3","Event":"s3:TestEvent",...}`.
pub(super) fn is_test_event(obj: &Map<String, Value>) -> bool {
    obj.get("Event").and_then(Value::as_str) == Some("s3:TestEvent")
}

/// The two fields every record is judged by. Read first and alone, so that a removal or restore
/// record with fields we do not understand is still ignored rather than called broken.
// `expecting` makes serde's complaints name the JSON, not these Rust types.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", expecting = "a record object")]
struct RecordHead {
    event_source: Option<String>,
    event_name: Option<String>,
}

/// Decodes the value of a `Records` field.
pub(super) fn decode_records(records: &Value) -> Result<Decoded, DecodeError> {
    let records = records
        .as_array()
        .ok_or_else(|| broken("Records is not an array".to_string()))?;
    if records.is_empty() {
        // S3 never sends this; it is not "an event that is not an upload", so do not delete it.
        return Err(broken("Records is empty".to_string()));
    }

    let mut uploads = Vec::new();
    let mut others: Vec<String> = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let head = RecordHead::deserialize(record).map_err(|e| {
            broken(format!(
                "record {i}: {}",
                one_line(&e.to_string(), ECHO_CHARS)
            ))
        })?;
        // Every record S3 writes names its source and event; one that does not is not a
        // notification we can judge, so it must not be quietly deleted as "ignored".
        let source = head
            .event_source
            .filter(|s| !s.is_empty())
            .ok_or_else(|| broken(format!("record {i}: no eventSource")))?;
        let name = head
            .event_name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| broken(format!("record {i}: no eventName")))?;
        if source == "aws:s3" && name.starts_with("ObjectCreated:") {
            uploads.push(record::upload(i, record, name)?);
        } else {
            let label = if source == "aws:s3" {
                name
            } else {
                format!("{name} from {source}")
            };
            // Name a few distinct events, not thousands: the reason is one log line.
            let label = one_line(&label, 60);
            if others.len() <= SHOWN && !others.contains(&label) {
                others.push(label);
            }
        }
    }

    if !uploads.is_empty() {
        // Mixed messages keep their uploads; the other records need nothing from us.
        return Ok(Decoded::Uploads(uploads));
    }
    Ok(Decoded::Ignored {
        reason: format!(
            "no object creation in {} record(s): {}",
            records.len(),
            list(&others)
        ),
    })
}

/// A `Broken` error for this form.
fn broken(reason: String) -> DecodeError {
    DecodeError::Broken {
        form: Form::S3Records,
        reason,
    }
}

/// How many distinct event names an `Ignored` reason lists.
const SHOWN: usize = 5;

/// `items` joined with commas; a sixth item, when collected, only shows that there were more.
fn list(items: &[String]) -> String {
    let mut out = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        out.push_str(", …");
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::{decode_message, Upload};

    const PUT: &str = include_str!("testdata/s3_put_v2_1.json");
    const STRUCTURE_2_2: &str = include_str!("testdata/s3_structure_v2_2.json");
    const TEST_EVENT: &str = include_str!("testdata/s3_test_event.json");

    /// The upload in AWS's documented PUT example, which the SNS tests wrap too.
    pub(crate) fn happy_face() -> Upload {
        Upload {
            bucket: "mybucket".into(),
            key: "HappyFace.jpg".into(),
            size: Some(1024),
            etag: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
            event_name: "ObjectCreated:Put".into(),
            event_time: Some("1970-01-01T00:00:00.000Z".into()),
        }
    }

    /// The documented PUT example with its key (and optionally event name) swapped.
    fn put_with(key: &str, event_name: &str) -> String {
        PUT.replace("\"HappyFace.jpg\"", &format!("\"{key}\""))
            .replace("\"ObjectCreated:Put\"", &format!("\"{event_name}\""))
    }

    #[test]
    fn documented_examples() {
        assert_eq!(
            decode_message(PUT),
            Ok(Decoded::Uploads(vec![happy_face()]))
        );
        assert_eq!(decode_message(TEST_EVENT), Ok(Decoded::TestEvent));
        // The 2.2 structure is a template ("eventName":"event-type", size as a sentence): it is
        // not an object creation, so none of its placeholder values matter.
        assert_eq!(
            decode_message(STRUCTURE_2_2),
            Ok(Decoded::Ignored {
                reason: "no object creation in 1 record(s): event-type".into()
            })
        );
    }

    #[test]
    fn awkward_keys_in_the_documented_put() {
        let cases: &[(&str, &str)] = &[
            ("red+flower.jpg", "red flower.jpg"),
            ("my+clip%2B1+%C3%A9t%C3%A9.mp4", "my clip+1 été.mp4"),
            ("c%2B%2B+talk.mov", "c++ talk.mov"),
            (
                "uploads/2024/01/team+a/take%201.mov",
                "uploads/2024/01/team a/take 1.mov",
            ),
            ("a/b/c/d/e/f/g/h/clip.mp4", "a/b/c/d/e/f/g/h/clip.mp4"),
            ("a/../b.mp4", "a/../b.mp4"),
            ("%E6%97%A5%E6%9C%AC.mp4", "日本.mp4"),
            ("100%25.mp4", "100%.mp4"),
        ];
        for (raw, want) in cases {
            let got = decode_message(&put_with(raw, "ObjectCreated:Put"));
            let want = Upload {
                key: (*want).into(),
                ..happy_face()
            };
            assert_eq!(got, Ok(Decoded::Uploads(vec![want])), "raw key {raw:?}");
        }
    }

    #[test]
    fn event_names() {
        let cases: &[(&str, Option<&str>)] = &[
            ("ObjectCreated:Put", None),
            ("ObjectCreated:Post", None),
            ("ObjectCreated:Copy", None),
            ("ObjectCreated:CompleteMultipartUpload", None),
            (
                "ObjectRemoved:Delete",
                Some("no object creation in 1 record(s): ObjectRemoved:Delete"),
            ),
            (
                "ObjectRestore:Completed",
                Some("no object creation in 1 record(s): ObjectRestore:Completed"),
            ),
            (
                "LifecycleExpiration:Delete",
                Some("no object creation in 1 record(s): LifecycleExpiration:Delete"),
            ),
            // Case matters: S3 spells it one way, and anything else is not S3's event.
            (
                "objectcreated:put",
                Some("no object creation in 1 record(s): objectcreated:put"),
            ),
        ];
        for (name, ignored) in cases {
            let got = decode_message(&put_with("HappyFace.jpg", name)).unwrap();
            match ignored {
                None => {
                    let want = Upload {
                        event_name: (*name).into(),
                        ..happy_face()
                    };
                    assert_eq!(got, Decoded::Uploads(vec![want]), "{name}");
                }
                Some(reason) => assert_eq!(
                    got,
                    Decoded::Ignored {
                        reason: (*reason).into()
                    }
                ),
            }
        }
    }

    #[test]
    fn several_records_keep_only_creations() {
        let v: Value = serde_json::from_str(PUT).unwrap();
        let created = v["Records"][0].clone();
        let mut removed = created.clone();
        removed["eventName"] = "ObjectRemoved:Delete".into();
        let mut second = created.clone();
        second["s3"]["object"]["key"] = "b+2.mp4".into();
        let mut foreign = created.clone();
        foreign["eventSource"] = "aws:sqs".into();

        let body =
            serde_json::json!({ "Records": [removed, created, foreign, second] }).to_string();
        let b2 = Upload {
            key: "b 2.mp4".into(),
            ..happy_face()
        };
        assert_eq!(
            decode_message(&body),
            Ok(Decoded::Uploads(vec![happy_face(), b2]))
        );

        let body = serde_json::json!({ "Records": [removed, removed, foreign] }).to_string();
        let reason = "no object creation in 3 record(s): ObjectRemoved:Delete, ObjectCreated:Put from aws:sqs";
        assert_eq!(
            decode_message(&body),
            Ok(Decoded::Ignored {
                reason: reason.into()
            })
        );
    }

    #[test]
    fn ignored_reasons_name_a_few_events() {
        let records: Vec<Value> = (0..2000)
            .map(|i| serde_json::json!({"eventSource": "aws:s3", "eventName": format!("ObjectRemoved:E{}", i % 9)}))
            .collect();
        let body = serde_json::json!({ "Records": records }).to_string();
        let reason = "no object creation in 2000 record(s): ObjectRemoved:E0, ObjectRemoved:E1, \
                      ObjectRemoved:E2, ObjectRemoved:E3, ObjectRemoved:E4, …";
        assert_eq!(
            decode_message(&body),
            Ok(Decoded::Ignored {
                reason: reason.into()
            })
        );
    }

    #[test]
    fn records_without_source_or_name_are_broken() {
        let v: Value = serde_json::from_str(PUT).unwrap();
        let cases: &[(&str, &str)] = &[
            ("eventName", "no eventName"),
            ("eventSource", "no eventSource"),
        ];
        for (field, reason) in cases {
            for blank in [Value::Null, "".into()] {
                let mut v = v.clone();
                v["Records"][0][*field] = blank;
                let want = DecodeError::Broken {
                    form: Form::S3Records,
                    reason: format!("record 0: {reason}"),
                };
                assert_eq!(decode_message(&v.to_string()), Err(want));
            }
        }
    }
}
