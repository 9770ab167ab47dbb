//! One `ObjectCreated:*` record of a `Records[]` notification, turned into an [`Upload`].

use serde::Deserialize;
use serde_json::Value;

use super::broken;
use crate::event::error::{one_line, quoted, DecodeError, ECHO_CHARS};
use crate::event::key::decode_form_key;
use crate::event::Upload;

/// The fields of a record that an upload needs. Unknown fields are ignored, as the docs ask
/// ("Applications should ignore new fields to stay forward compatible").
// `expecting` makes serde's complaints name the JSON, not these Rust types.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", expecting = "a record object")]
struct CreatedRecord {
    event_version: Option<String>,
    event_time: Option<String>,
    s3: Option<Entity>,
}

#[derive(Deserialize)]
#[serde(expecting = "s3 to be an object")]
struct Entity {
    bucket: Option<Bucket>,
    object: Option<Object>,
}

#[derive(Deserialize)]
#[serde(expecting = "s3.bucket to be an object")]
struct Bucket {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", expecting = "s3.object to be an object")]
struct Object {
    key: Option<String>,
    size: Option<u64>,
    e_tag: Option<String>,
}

/// The upload that record `i`, named `event_name`, announces.
pub(super) fn upload(i: usize, record: &Value, event_name: String) -> Result<Upload, DecodeError> {
    let rec = CreatedRecord::deserialize(record).map_err(|e| {
        broken(format!(
            "record {i}: {}",
            one_line(&e.to_string(), ECHO_CHARS)
        ))
    })?;
    check_version(i, rec.event_version.as_deref())?;
    let entity = rec
        .s3
        .ok_or_else(|| broken(format!("record {i}: no s3 field")))?;
    let bucket = entity
        .bucket
        .and_then(|b| b.name)
        .filter(|name| !name.is_empty())
        .ok_or_else(|| broken(format!("record {i}: no s3.bucket.name")))?;
    let object = entity
        .object
        .ok_or_else(|| broken(format!("record {i}: no s3.object")))?;
    let raw_key = object
        .key
        .filter(|key| !key.is_empty())
        .ok_or_else(|| broken(format!("record {i}: no s3.object.key")))?;
    let key = decode_form_key(&raw_key).map_err(|e| {
        broken(format!(
            "record {i}: s3.object.key {}: {e}",
            quoted(&raw_key, ECHO_CHARS)
        ))
    })?;
    Ok(Upload {
        bucket,
        key,
        size: object.size,
        etag: object.e_tag,
        event_name,
        event_time: rec.event_time,
    })
}

/// The docs ask consumers to compare the major version for equality: a new major version may
/// change what fields mean, so refusing it beats transcoding the wrong object.
fn check_version(i: usize, version: Option<&str>) -> Result<(), DecodeError> {
    match version {
        None => Ok(()),
        Some(v) if v == "2" || v.starts_with("2.") => Ok(()),
        Some(v) => Err(broken(format!(
            "record {i}: eventVersion {} is not 2.x",
            quoted(v, 20)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{decode_message, Form};

    const PUT: &str = include_str!("../testdata/s3_put_v2_1.json");

    #[test]
    fn broken_creations_are_errors() {
        let v: Value = serde_json::from_str(PUT).unwrap();
        let edit = |f: &dyn Fn(&mut Value)| {
            let mut v = v.clone();
            f(&mut v["Records"][0]);
            v.to_string()
        };
        let cases: Vec<(String, &str)> = vec![
            (
                edit(&|r| r["s3"]["bucket"] = serde_json::json!({})),
                "record 0: no s3.bucket.name",
            ),
            (
                edit(&|r| r["s3"]["bucket"]["name"] = "".into()),
                "record 0: no s3.bucket.name",
            ),
            (
                edit(&|r| r["s3"]["object"]["key"] = Value::Null),
                "record 0: no s3.object.key",
            ),
            (
                edit(&|r| r["s3"]["object"]["key"] = "".into()),
                "record 0: no s3.object.key",
            ),
            (edit(&|r| r["s3"] = Value::Null), "record 0: no s3 field"),
            (
                edit(&|r| r["s3"]["object"]["key"] = "100%".into()),
                "record 0: s3.object.key \"100%\": bad percent-escape at byte 3",
            ),
            (
                edit(&|r| r["s3"]["object"]["key"] = "%C3.mp4".into()),
                "record 0: s3.object.key \"%C3.mp4\": percent-escapes decode to invalid UTF-8",
            ),
            (
                edit(&|r| r["s3"]["object"]["size"] = (-1).into()),
                "record 0: invalid value: integer `-1`, expected u64",
            ),
            (
                edit(&|r| r["eventVersion"] = "3.0".into()),
                "record 0: eventVersion \"3.0\" is not 2.x",
            ),
            (
                edit(&|r| r["s3"] = 7.into()),
                "record 0: invalid type: integer `7`, expected s3 to be an object",
            ),
            (
                edit(&|r| r["s3"]["object"] = "k".into()),
                "record 0: invalid type: string \"k\", expected s3.object to be an object",
            ),
            (
                edit(&|r| *r = Value::Null),
                "record 0: invalid type: null, expected a record object",
            ),
        ];
        for (body, reason) in cases {
            let want = DecodeError::Broken {
                form: Form::S3Records,
                reason: reason.into(),
            };
            assert_eq!(decode_message(&body), Err(want), "body {body}");
        }
    }

    #[test]
    fn event_versions_2_x_are_accepted() {
        let cases: &[Option<&str>] = &[
            None,
            Some("2.0"),
            Some("2.1"),
            Some("2.2"),
            Some("2.3"),
            Some("2"),
        ];
        for version in cases {
            let mut v: Value = serde_json::from_str(PUT).unwrap();
            v["Records"][0]["eventVersion"] = version.map_or(Value::Null, Into::into);
            let got = upload(0, &v["Records"][0], "ObjectCreated:Put".into());
            assert_eq!(
                got.map(|u| u.key),
                Ok("HappyFace.jpg".to_string()),
                "{version:?}"
            );
        }
        for bad in ["3.0", "1.0", "20.1", ""] {
            let mut v: Value = serde_json::from_str(PUT).unwrap();
            v["Records"][0]["eventVersion"] = bad.into();
            assert!(
                upload(0, &v["Records"][0], "ObjectCreated:Put".into()).is_err(),
                "{bad:?}"
            );
        }
    }
}
