//! Media playlists while they grow: what ffmpeg has finished so far, and the EVENT playlist
//! a player may follow before the encode ends.

use std::path::Path;

use m3u8_rs::{MediaPlaylist, MediaPlaylistType};

use super::HlsError;

/// Reads the media playlist ffmpeg keeps at `path`, or `None` before its first segment.
///
/// ffmpeg replaces the file by a rename (`temp_file`), so a read sees a whole playlist, and
/// every segment it lists is complete.
pub async fn read_media_playlist(path: &Path) -> Result<Option<MediaPlaylist>, HlsError> {
    let text = match tokio::fs::read(path).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(HlsError::Io {
                path: path.display().to_string(),
                source,
            })
        }
    };
    m3u8_rs::parse_media_playlist_res(&text)
        .map(Some)
        .map_err(|e| HlsError::Playlist {
            path: path.display().to_string(),
            detail: e.to_string(),
        })
}

/// The first `segments` segments of `playlist` as an EVENT playlist: a player loads it, plays
/// what is listed, and reloads it for more until the final VOD playlist (with ENDLIST)
/// replaces it.
pub fn render_event_playlist(playlist: &MediaPlaylist, segments: usize) -> Vec<u8> {
    let mut event = playlist.clone();
    event.segments.truncate(segments);
    event.playlist_type = Some(MediaPlaylistType::Event);
    event.end_list = false;
    let mut out = Vec::new();
    event
        .write_to(&mut out)
        .expect("writing to a Vec cannot fail");
    out
}

/// Rewrites the finished playlist at `path` as a VOD playlist with its ENDLIST, in one step
/// for any reader.
pub async fn finalize_vod_playlist(path: &Path) -> Result<(), HlsError> {
    let mut playlist = read_media_playlist(path)
        .await?
        .ok_or_else(|| HlsError::Empty {
            path: path.display().to_string(),
        })?;
    playlist.playlist_type = Some(MediaPlaylistType::Vod);
    playlist.end_list = true;
    let mut out = Vec::new();
    playlist
        .write_to(&mut out)
        .expect("writing to a Vec cannot fail");
    // Written aside and renamed, as ffmpeg does: the publisher may be reading it right now.
    let io = |source| HlsError::Io {
        path: path.display().to_string(),
        source,
    };
    let aside = path.with_extension("m3u8.final");
    tokio::fs::write(&aside, out).await.map_err(io)?;
    tokio::fs::rename(&aside, path).await.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROWING: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n\
        #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n\
        #EXTINF:4.000000,\nseg_00000.ts\n#EXTINF:4.000000,\nseg_00001.ts\n\
        #EXTINF:4.000000,\nseg_00002.ts\n";

    #[test]
    fn an_event_playlist_lists_the_published_segments_and_no_end() {
        let playlist = m3u8_rs::parse_media_playlist_res(GROWING.as_bytes()).unwrap();
        let text = String::from_utf8(render_event_playlist(&playlist, 2)).unwrap();
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT"), "{text}");
        assert!(!text.contains("ENDLIST"), "{text}");
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        let uris: Vec<_> = parsed.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(uris, ["seg_00000.ts", "seg_00001.ts"]);
        assert_eq!(parsed.target_duration, 4);
        assert!(parsed.independent_segments);
    }

    #[tokio::test]
    async fn a_playlist_not_yet_written_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.m3u8");
        assert!(read_media_playlist(&path).await.unwrap().is_none());
        std::fs::write(&path, GROWING).unwrap();
        let read = read_media_playlist(&path).await.unwrap().unwrap();
        assert_eq!(read.segments.len(), 3);
        finalize_vod_playlist(&path).await.unwrap();
        let vod = read_media_playlist(&path).await.unwrap().unwrap();
        assert_eq!(vod.playlist_type, Some(MediaPlaylistType::Vod));
        assert!(vod.end_list && vod.segments.len() == 3);
        std::fs::write(&path, "not a playlist").unwrap();
        assert!(read_media_playlist(&path).await.is_err());
    }
}
