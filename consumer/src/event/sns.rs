//! The SNS envelope: how S3 -> SNS -> SQS arrives when raw message delivery is off. The queue
//! then holds SNS's JSON, and the S3 (or EventBridge) event is its `Message`, as a string.
//!
//! Fields as in the SNS Developer Guide, "Fanout to Amazon SQS queues"
//! (docs.aws.amazon.com/sns/latest/dg/sns-sqs-as-subscriber.html).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::{one_line, quoted, DecodeError, Form, ECHO_CHARS};

/// True for an SNS envelope: a string `Type`. SNS names its fields in PascalCase (`Type`,
/// `Message`, `TopicArn`), which none of the other shapes use.
pub(super) fn is_sns(obj: &Map<String, Value>) -> bool {
    obj.get("Type").is_some_and(Value::is_string)
}

/// The envelope fields we use; the signature and URLs are not checked here, because SQS only
/// accepts what the queue policy lets the topic send.
#[derive(Deserialize)]
#[serde(expecting = "an SNS envelope object")]
struct SnsEnvelope {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message")]
    message: Option<String>,
}

/// The `Message` string of an SNS `Notification`, to be decoded in turn.
pub(super) fn sns_message(
    value: &Value,
    what: &'static str,
    text: &str,
) -> Result<String, DecodeError> {
    let envelope = SnsEnvelope::deserialize(value).map_err(|e| broken(&e))?;
    if envelope.kind != "Notification" {
        // A SubscriptionConfirmation reaches a queue that someone in another account subscribed
        // (the docs: such a subscription "must be confirmed"); that is a person's decision, so
        // leave it for the redrive policy to set aside.
        return Err(DecodeError::unknown_shape(
            what,
            text,
            format!(
                "an SNS {} message, not a Notification",
                quoted(&envelope.kind, 40)
            ),
        ));
    }
    envelope.message.ok_or_else(|| DecodeError::Broken {
        form: Form::Sns,
        reason: "no Message".to_string(),
    })
}

fn broken(err: &serde_json::Error) -> DecodeError {
    DecodeError::Broken {
        form: Form::Sns,
        reason: one_line(&err.to_string(), ECHO_CHARS),
    }
}

#[cfg(test)]
mod tests {
    use crate::event::{decode_message, DecodeError, Decoded, Form};
    use serde_json::Value;

    const SNS_HELLO: &str = include_str!("testdata/sns_hello_world.json");
    const SNS_PUT: &str = include_str!("testdata/sns_s3_put.json");
    const SNS_TEST_EVENT: &str = include_str!("testdata/sns_s3_test_event.json");
    const EB_CREATED: &str = include_str!("testdata/eventbridge_object_created.json");

    #[test]
    fn sns_envelopes() {
        let put = crate::event::s3::tests::happy_face();
        assert_eq!(decode_message(SNS_PUT), Ok(Decoded::Uploads(vec![put])));
        assert_eq!(decode_message(SNS_TEST_EVENT), Ok(Decoded::TestEvent));

        // EventBridge -> SNS -> SQS nests the same way.
        let mut env: Value = serde_json::from_str(SNS_HELLO).unwrap();
        env["Message"] = EB_CREATED.into();
        let got = decode_message(&env.to_string()).unwrap();
        assert!(
            matches!(&got, Decoded::Uploads(u) if u[0].key == "example-key"),
            "{got:?}"
        );

        // The documented envelope carries "Hello world!", which is not an S3 event.
        match decode_message(SNS_HELLO) {
            Err(DecodeError::NotJson { what, excerpt, .. }) => {
                assert_eq!(
                    (what, excerpt.as_str()),
                    ("SNS Message", "\"Hello world!\"")
                );
            }
            other => panic!("want NotJson, got {other:?}"),
        }
    }

    #[test]
    fn odd_sns_envelopes() {
        let mut env: Value = serde_json::from_str(SNS_HELLO).unwrap();
        env["Type"] = "SubscriptionConfirmation".into();
        assert!(matches!(
            decode_message(&env.to_string()),
            Err(DecodeError::UnknownShape { reason, .. }) if reason.contains("SubscriptionConfirmation")
        ));

        let mut env: Value = serde_json::from_str(SNS_HELLO).unwrap();
        env["Message"] = Value::Null;
        let want = DecodeError::Broken {
            form: Form::Sns,
            reason: "no Message".into(),
        };
        assert_eq!(decode_message(&env.to_string()), Err(want));

        let mut inner: Value = serde_json::from_str(SNS_HELLO).unwrap();
        inner["Message"] = include_str!("testdata/s3_put_v2_1.json").into();
        let mut outer: Value = serde_json::from_str(SNS_HELLO).unwrap();
        outer["Message"] = inner.to_string().into();
        assert!(matches!(
            decode_message(&outer.to_string()),
            Err(DecodeError::UnknownShape { what: "SNS Message", reason, .. })
                if reason.contains("inside an SNS envelope")
        ));
    }
}
