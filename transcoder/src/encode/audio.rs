//! A CMAF job's audio renditions: every audio track of the source, each encoded once into a
//! folder of its own, named for players by its language.

use crate::probe::{AudioStream, SourceInfo};

/// One audio rendition.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioTrack {
    /// The source's stream.
    pub stream: AudioStream,
    /// Its folder beside the rung folders: `audio` for the first, `audio_2` ... after it.
    pub folder: String,
    /// The name a player lists (`NAME` in HLS): the language, or `Audio N`, unique in the job.
    pub name: String,
    /// The track a player starts with: the source's default one.
    pub default: bool,
}

/// The audio renditions of `source`, its default track first.
pub fn audio_tracks(source: &SourceInfo) -> Vec<AudioTrack> {
    let mut tracks: Vec<AudioTrack> = Vec::with_capacity(source.audio_tracks.len());
    for (i, stream) in source.audio_tracks.iter().enumerate() {
        let number = i + 1;
        let folder = match number {
            1 => "audio".to_string(),
            n => format!("audio_{n}"),
        };
        let mut name = stream
            .language
            .clone()
            .unwrap_or_else(|| format!("Audio {number}"));
        // HLS wants NAME unique in its group: two English tracks are `eng` and `eng 2`.
        if tracks.iter().any(|t| t.name == name) {
            name = format!("{name} {number}");
        }
        tracks.push(AudioTrack {
            stream: stream.clone(),
            folder,
            name,
            default: i == 0,
        });
    }
    tracks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::parse_ffprobe_json;

    #[test]
    fn each_track_gets_a_folder_and_a_unique_name_the_default_first() {
        let path = format!("{}/src/probe/testdata/ok.json", env!("CARGO_MANIFEST_DIR"));
        let mut source = parse_ffprobe_json(&std::fs::read(path).unwrap()).unwrap();
        let first = source.audio_tracks[0].clone();
        let track = |index, language: Option<&str>| AudioStream {
            index,
            language: language.map(str::to_string),
            ..first.clone()
        };
        source.audio_tracks = vec![
            track(2, Some("eng")),
            track(1, Some("fra")),
            track(3, Some("eng")),
            track(4, None),
        ];
        let tracks = audio_tracks(&source);
        let described: Vec<(&str, &str, bool)> = tracks
            .iter()
            .map(|t| (t.folder.as_str(), t.name.as_str(), t.default))
            .collect();
        assert_eq!(
            described,
            [
                ("audio", "eng", true),
                ("audio_2", "fra", false),
                ("audio_3", "eng 3", false),
                ("audio_4", "Audio 4", false)
            ]
        );
        source.audio_tracks.clear();
        assert!(audio_tracks(&source).is_empty());
    }
}
