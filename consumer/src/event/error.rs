//! [`DecodeError`], and the helpers that keep its messages on one line and short.
//!
//! The consumer logs these next to the SQS message id and leaves the message for the queue's
//! redrive policy, so a message must be one log line, and must not copy a whole body (bodies
//! reach 256 KiB, and keys may hold newlines) into the log.

use std::fmt;

/// The most characters of outside text (a body, a key, a parser's complaint) that one piece of an
/// error message repeats; an error holds at most two such pieces, so about 200 in all.
pub(crate) const ECHO_CHARS: usize = 100;

/// Which known shape a broken message had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// S3's own notification, `{"Records":[...]}`.
    S3Records,
    /// An Amazon SNS envelope, `{"Type":"Notification","Message":"..."}`.
    Sns,
    /// An Amazon EventBridge event from `aws.s3`.
    EventBridge,
}

impl fmt::Display for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Form::S3Records => "S3 Records[]",
            Form::Sns => "SNS envelope",
            Form::EventBridge => "EventBridge S3",
        })
    }
}

/// Why a message body could not be decoded. Every variant means "leave the message on the
/// queue": retrying will not help, but the redrive policy moves it where a person can look.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The text is not JSON at all.
    #[error("{what} is not JSON ({reason}); it starts {excerpt}")]
    NotJson {
        /// Which text: "message body", or "SNS Message" for the string inside an envelope.
        what: &'static str,
        /// The JSON parser's complaint, cut short.
        reason: String,
        /// The start of the text, quoted, escaped onto one line and cut short.
        excerpt: String,
    },
    /// JSON, but not a shape that S3, SNS or EventBridge deliver (or one that this consumer
    /// should not be receiving, such as another service's EventBridge event).
    #[error("{what} is JSON of no known shape ({reason}); it starts {excerpt}")]
    UnknownShape {
        /// Which text: "message body" or "SNS Message".
        what: &'static str,
        /// What was seen instead of a known shape.
        reason: String,
        /// The start of the text, quoted, escaped onto one line and cut short.
        excerpt: String,
    },
    /// A known shape whose content cannot be used: a record without bucket or key, a key with a
    /// bad percent-escape or one that decodes to invalid UTF-8, a field of the wrong type.
    #[error("{form} message is broken: {reason}")]
    Broken {
        /// The shape the message had.
        form: Form,
        /// What is wrong, naming the record and field; any text quoted from the body is cut short.
        reason: String,
    },
}

impl DecodeError {
    /// `NotJson` for `text`, whose parse failed with `err`.
    pub(crate) fn not_json(what: &'static str, text: &str, err: &serde_json::Error) -> Self {
        DecodeError::NotJson {
            what,
            reason: one_line(&err.to_string(), ECHO_CHARS),
            excerpt: quoted(text, ECHO_CHARS),
        }
    }

    /// `UnknownShape` for `text`, with a short `reason` of our own.
    pub(crate) fn unknown_shape(what: &'static str, text: &str, reason: impl Into<String>) -> Self {
        DecodeError::UnknownShape {
            what,
            reason: reason.into(),
            excerpt: quoted(text, ECHO_CHARS),
        }
    }
}

/// `s` with control and unprintable characters escaped (so a newline in a key cannot split the
/// log line), cut to at most `max` characters of output, with `…` added when something was cut.
pub(crate) fn one_line(s: &str, max: usize) -> String {
    clip(s, max, false)
}

/// `s` between double quotes, escaped and cut as [`one_line`] does; quotes and backslashes
/// inside are escaped too, so the quoted text cannot be mistaken for the end of it.
pub(crate) fn quoted(s: &str, max: usize) -> String {
    format!("\"{}\"", clip(s, max, true))
}

fn clip(s: &str, max: usize, escape_quotes: bool) -> String {
    let mut out = String::new();
    let mut len = 0;
    for c in s.chars() {
        let piece: String = match c {
            '"' | '\\' if !escape_quotes => c.to_string(),
            '\'' => c.to_string(),
            _ => c.escape_debug().collect(),
        };
        let piece_len = piece.chars().count();
        if len + piece_len > max {
            out.push('…');
            return out;
        }
        out.push_str(&piece);
        len += piece_len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_escapes_and_cuts() {
        let cases: &[(&str, usize, &str)] = &[
            ("plain", 10, "plain"),
            ("", 10, ""),
            ("a\nb\rc\td", 20, "a\\nb\\rc\\td"),
            ("say \"hi\"", 20, "say \"hi\""),
            ("back\\slash", 20, "back\\slash"),
            ("été", 10, "été"),
            ("0123456789abc", 10, "0123456789…"),
            // An escape is never split: "\n" does not fit in the last slot, so it is dropped whole.
            ("012345678\n", 10, "012345678…"),
            ("nul\0", 10, "nul\\0"),
            ("it's", 10, "it's"),
            ("zero\u{200b}width", 30, "zero\\u{200b}width"),
        ];
        for (input, max, want) in cases {
            assert_eq!(one_line(input, *max), *want, "input {input:?}");
        }
    }

    #[test]
    fn quoted_wraps_in_quotes() {
        assert_eq!(quoted("a\"b\\c", 10), "\"a\\\"b\\\\c\"");
        assert_eq!(quoted(&"x".repeat(500), 5), "\"xxxxx…\"");
    }
}
