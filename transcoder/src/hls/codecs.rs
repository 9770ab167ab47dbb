//! RFC 6381 codec strings (`avc1.64001f`) read from the stream ffmpeg really wrote, so the
//! master playlist never promises a profile or level the segments do not have.

use std::path::Path;

use super::HlsError;
use crate::config::SegmentFormat;

/// The codec string of the AAC-LC audio we encode.
pub const AAC_LC: &str = "mp4a.40.2";

/// Finds the first sequence parameter set (NAL type 7) in an Annex B byte stream and returns
/// its first three payload bytes: profile_idc, the constraint flags and level_idc.
pub fn find_sps(annexb: &[u8]) -> Option<[u8; 3]> {
    let mut i = 0;
    while i + 3 < annexb.len() {
        if annexb[i..i + 3] == [0, 0, 1] {
            let nal = &annexb[i + 3..];
            if nal.first().map(|h| h & 0x1f) == Some(7) && nal.len() >= 4 {
                // None of these three bytes can hold an emulation-prevention byte: that needs
                // two zero bytes before it, and profile_idc is never 0.
                return Some([nal[1], nal[2], nal[3]]);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    None
}

/// `avc1.PPCCLL` in hex, from the SPS bytes.
pub fn avc1_codec_string(sps: [u8; 3]) -> String {
    format!("avc1.{:02x}{:02x}{:02x}", sps[0], sps[1], sps[2])
}

/// The codec string of a CMAF init segment's H.264 track, from its `avcC` box: the box's
/// payload starts with a version byte, then the SPS's profile, constraint flags and level.
pub fn init_codec_string(init: &[u8]) -> Option<String> {
    let at = init.windows(4).position(|w| w == b"avcC")?;
    let payload = init.get(at + 4..at + 8)?;
    (payload[0] == 1).then(|| avc1_codec_string([payload[1], payload[2], payload[3]]))
}

/// The video codec string of a rung we wrote: from its `init` segment when it is CMAF, from
/// its first segment when it is MPEG-TS.
pub async fn rung_codec_string(
    format: SegmentFormat,
    ffmpeg: &Path,
    init: &Path,
    first_segment: &Path,
) -> Result<String, HlsError> {
    match format {
        SegmentFormat::Ts => video_codec_string(ffmpeg, first_segment).await,
        SegmentFormat::Cmaf => {
            let bytes = tokio::fs::read(&init)
                .await
                .map_err(|source| HlsError::Io {
                    path: init.display().to_string(),
                    source,
                })?;
            init_codec_string(&bytes).ok_or_else(|| HlsError::NoSps {
                path: init.display().to_string(),
            })
        }
    }
}

/// Reads the first video access unit of `segment` (a file we wrote) and returns its codec
/// string.
pub async fn video_codec_string(ffmpeg: &Path, segment: &Path) -> Result<String, HlsError> {
    let url = crate::input::file_url(segment);
    let output = crate::child::tool_command(ffmpeg)
        .args(["-hide_banner", "-nostdin", "-v", "error"])
        .args(["-protocol_whitelist", "file", "-format_whitelist", "mpegts"])
        .arg("-i")
        .arg(&url)
        .args([
            "-map",
            "0:v:0",
            "-c",
            "copy",
            "-frames:v",
            "1",
            "-f",
            "h264",
            "pipe:1",
        ])
        .output()
        .await
        .map_err(|source| HlsError::Io {
            path: segment.display().to_string(),
            source,
        })?;
    find_sps(&output.stdout)
        .map(avc1_codec_string)
        .ok_or_else(|| HlsError::NoSps {
            path: segment.display().to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sps_after_an_sei_as_x264_writes_it() {
        // The head of `ffmpeg -i x264.mp4 -c copy -f h264 -`: an SEI (type 6) with x264's
        // banner, then the SPS (0x67) of a High profile, level 3.1 stream.
        let stream = [
            0, 0, 0, 1, 0x06, 0x05, 0xff, 0xff, 0x50, 0xdc, 0x45, 0xe9, b'x', b'2', b'6', b'4',
            0x80, 0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40,
        ];
        let sps = find_sps(&stream).unwrap();
        assert_eq!(avc1_codec_string(sps), "avc1.64001f");
    }

    #[test]
    fn constrained_baseline_keeps_its_flags() {
        let sps = find_sps(&[0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0x95]).unwrap();
        assert_eq!(avc1_codec_string(sps), "avc1.42c01e");
    }

    #[test]
    fn a_cmaf_init_segment_names_its_profile_and_level() {
        // ... `avcC`, version 1, High (0x64), no constraints, level 3.1 (0x1f), then the rest.
        let init = [
            b"....moov....avcC".as_slice(),
            &[1, 0x64, 0, 0x1f, 0xff, 0xe1],
        ]
        .concat();
        assert_eq!(init_codec_string(&init).as_deref(), Some("avc1.64001f"));
        assert_eq!(init_codec_string(b"....moov....avcC"), None);
        assert_eq!(init_codec_string(b"ftypmoov"), None);
    }

    #[test]
    fn no_sps_no_string() {
        assert_eq!(find_sps(&[0, 0, 1, 0x65, 1, 2, 3]), None);
        assert_eq!(find_sps(&[]), None);
        assert_eq!(find_sps(&[0, 0, 1, 0x67]), None);
    }
}
