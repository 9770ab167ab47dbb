//! Decoding object keys as S3's own notifications carry them.
//!
//! The S3 User Guide ("Event message structure") says: "The object key name value is URL
//! encoded. For example, "red flower.jpg" becomes "red+flower.jpg" (Amazon S3 returns
//! "application/x-www-form-urlencoded" as the content type in the response)." So the encoding is
//! the HTML-form one: a space becomes `+`, and any other byte that needs it becomes `%XX`, which
//! is why a literal `+` in a key arrives as `%2B`.
//!
//! The decoder is written here rather than taken from a crate because the order is the whole
//! point: `+` must mean a space, and `%2B` must mean a `+` that is *not* then read as a space.
//! Doing both in a single pass over the bytes gets that right by construction.

/// Why a key from a notification could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum KeyError {
    /// A `%` not followed by two hex digits; the number is the byte offset of the `%`.
    #[error("bad percent-escape at byte {0}")]
    BadEscape(usize),
    /// The escapes decode to bytes that are not UTF-8, and S3 keys are UTF-8.
    #[error("percent-escapes decode to invalid UTF-8")]
    InvalidUtf8,
}

/// The key as S3 stores it, from the form-encoded `raw` of a `Records[]` notification.
///
/// The result is the object's key, not a path: it may hold `..`, leading `/`, doubled `//` or
/// control characters, all legal in S3. Whoever builds a file name from it must sanitise it.
pub(crate) fn decode_form_key(raw: &str) -> Result<String, KeyError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi << 4) | lo);
                        i += 3;
                    }
                    _ => return Err(KeyError::BadEscape(i)),
                }
            }
            // Everything else, including non-ASCII that arrived unescaped, is kept as it is:
            // it came from a &str, so it is already whole UTF-8 sequences.
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    // Escapes can spell any bytes (a lone `%C3`, an overlong `%C0%AF`), so check the result.
    String::from_utf8(out).map_err(|_| KeyError::InvalidUtf8)
}

/// The form encoding of `key`, as S3 writes it into notifications: the inverse of
/// [`decode_form_key`]. Used when the consumer writes a notification itself (one message per
/// upload when a message carried several).
pub(crate) fn encode_form_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() * 3);
    for &b in key.as_bytes() {
        match b {
            b' ' => out.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' | b'/' => {
                out.push(char::from(b))
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// The value of one hex digit, either case.
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_form_encoded_keys() {
        let cases: &[(&str, &str)] = &[
            // The documentation's own examples.
            ("HappyFace.jpg", "HappyFace.jpg"),
            ("red+flower.jpg", "red flower.jpg"),
            // `+` is a space first; `%2B` is a literal plus that stays a plus.
            ("my+clip%2B1+%C3%A9t%C3%A9.mp4", "my clip+1 été.mp4"),
            ("a%2Bb.mp4", "a+b.mp4"),
            ("a%2bb.mp4", "a+b.mp4"),
            ("%2B%2B+%2B", "++ +"),
            ("c%2B%2B+talk.mov", "c++ talk.mov"),
            ("++", "  "),
            ("%20lead+and+trail%20", " lead and trail "),
            // Deep folders, whether or not S3 escaped the slashes.
            (
                "uploads/2024/01/02/team+a/raw/take%201.mov",
                "uploads/2024/01/02/team a/raw/take 1.mov",
            ),
            ("videos%2F2024%2Fclip.mp4", "videos/2024/clip.mp4"),
            // `..` is just characters in a key; it is kept, not resolved.
            ("a/../b.mp4", "a/../b.mp4"),
            ("..%2F..%2Fetc%2Fpasswd", "../../etc/passwd"),
            ("%2E%2E/x.mp4", "../x.mp4"),
            // Non-ASCII, escaped and not.
            ("%E6%97%A5%E6%9C%AC%E8%AA%9E.mp4", "日本語.mp4"),
            ("%F0%9F%8E%AC+take+1.mp4", "🎬 take 1.mp4"),
            ("été.mp4", "été.mp4"),
            // Characters S3's docs list as needing special handling.
            ("100%25+done.mp4", "100% done.mp4"),
            (
                "clip%3A01%3B02%3D03%26%40%2C%3F.mp4",
                "clip:01;02=03&@,?.mp4",
            ),
            ("%28final%29+%5B1%5D.mp4", "(final) [1].mp4"),
            ("line%0Abreak.mp4", "line\nbreak.mp4"),
            ("", ""),
        ];
        for (raw, want) in cases {
            assert_eq!(decode_form_key(raw).as_deref(), Ok(*want), "raw {raw:?}");
        }
    }

    #[test]
    fn rejects_bad_escapes_and_invalid_utf8() {
        let cases: &[(&str, KeyError)] = &[
            ("100%", KeyError::BadEscape(3)),
            ("%", KeyError::BadEscape(0)),
            ("%2", KeyError::BadEscape(0)),
            ("%zz.mp4", KeyError::BadEscape(0)),
            ("a%%41", KeyError::BadEscape(1)),
            ("ok%2Bthen%G1", KeyError::BadEscape(9)),
            // A `%` followed by a multi-byte character must not be split mid-character.
            ("%é1", KeyError::BadEscape(0)),
            ("%C3", KeyError::InvalidUtf8),
            ("%FF.mp4", KeyError::InvalidUtf8),
            ("%C3%28", KeyError::InvalidUtf8),
            // An overlong `/` and a UTF-16 surrogate: both invalid UTF-8, both refused.
            ("%C0%AF", KeyError::InvalidUtf8),
            ("%ED%A0%80", KeyError::InvalidUtf8),
        ];
        for (raw, want) in cases {
            assert_eq!(decode_form_key(raw), Err(want.clone()), "raw {raw:?}");
        }
    }

    #[test]
    fn encoding_round_trips_through_decoding() {
        let keys = [
            "plain.mp4",
            "up/my clip+1 été.mp4",
            "a%2Bb+c d/..//x\u{1}y",
            "日本語/ファイル 名.mov",
            "100% + 50%.mp4",
        ];
        for key in keys {
            let encoded = encode_form_key(key);
            assert!(!encoded.contains(' '), "{encoded}");
            assert_eq!(decode_form_key(&encoded).unwrap(), key, "{encoded}");
        }
        assert_eq!(encode_form_key("red flower+1.jpg"), "red+flower%2B1.jpg");
    }
}
