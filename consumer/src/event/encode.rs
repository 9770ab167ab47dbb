//! Writing a notification for one upload, in the form S3 itself sends, so the consumer can
//! split a message that carries several uploads into one message per upload: each job then
//! owns a message of its own, and deleting one cannot lose another.

use serde_json::json;

use super::key::encode_form_key;
use super::Upload;

/// The body of an S3 `Records[]` notification for `upload` alone.
pub fn single_upload_notification(upload: &Upload) -> String {
    let mut object = json!({ "key": encode_form_key(&upload.key) });
    if let Some(size) = upload.size {
        object["size"] = size.into();
    }
    if let Some(etag) = &upload.etag {
        object["eTag"] = etag.as_str().into();
    }
    let mut record = json!({
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": upload.event_name_for_records(),
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": { "name": upload.bucket },
            "object": object,
        },
    });
    if let Some(time) = &upload.event_time {
        record["eventTime"] = time.as_str().into();
    }
    json!({ "Records": [record] }).to_string()
}

impl Upload {
    /// EventBridge calls every creation `Object Created`; a Records[] event must say
    /// `ObjectCreated:...` to be read back as an upload.
    fn event_name_for_records(&self) -> String {
        if self.event_name.starts_with("ObjectCreated:") {
            self.event_name.clone()
        } else {
            "ObjectCreated:Put".to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{decode_message, Decoded};
    use super::*;

    #[test]
    fn split_messages_decode_to_the_same_upload() {
        let uploads = [
            Upload {
                bucket: "raw".into(),
                key: "up/my clip+1 été.mp4".into(),
                size: Some(1024),
                etag: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
                event_name: "ObjectCreated:CompleteMultipartUpload".into(),
                event_time: Some("2026-11-21T10:00:00.000Z".into()),
            },
            Upload {
                bucket: "raw".into(),
                key: "a".into(),
                size: None,
                etag: None,
                event_name: "Object Created".into(),
                event_time: None,
            },
        ];
        for upload in uploads {
            let body = single_upload_notification(&upload);
            let Ok(Decoded::Uploads(got)) = decode_message(&body) else {
                panic!("{body}");
            };
            let mut want = upload.clone();
            want.event_name = upload.event_name_for_records();
            assert_eq!(got, vec![want], "{body}");
        }
    }
}
