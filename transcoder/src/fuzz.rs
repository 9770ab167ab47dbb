//! Bounded fuzzing with proptest of the two parsers that read what ffprobe and ffmpeg print
//! about an upload, which a hostile file shapes: whatever they get, they answer without
//! panicking. The case count keeps the run to a second or two; `PROPTEST_CASES` raises it.

use proptest::prelude::*;
use serde_json::Value;

use crate::encode::{parse_progress_line, ProgressTracker};
use crate::probe::parse_ffprobe_json;

const PROBES: [&str; 4] = [
    include_str!("probe/testdata/ok.json"),
    include_str!("probe/testdata/rot.json"),
    include_str!("probe/testdata/cover.json"),
    include_str!("probe/testdata/anamorphic_cover.json"),
];

/// A JSON scalar of any kind, as ffprobe might print for a field a hostile file controls.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,24}".prop_map(Value::from),
        "-?[0-9]{1,12}(/-?[0-9]{1,6})?".prop_map(Value::from),
    ]
}

fn scalar_paths(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => map
            .iter()
            .for_each(|(k, c)| scalar_paths(c, format!("{at}/{k}"), out)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, c)| scalar_paths(c, format!("{at}/{i}"), out)),
        _ => out.push(at),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn ffprobe_output_with_fields_replaced_is_answered(
        which in 0usize..PROBES.len(),
        picks in prop::collection::vec((any::<prop::sample::Index>(), scalar()), 1..6),
    ) {
        let mut v: Value = serde_json::from_str(PROBES[which]).unwrap();
        let mut paths = Vec::new();
        scalar_paths(&v, String::new(), &mut paths);
        for (pick, with) in picks {
            let path = pick.get(&paths).clone();
            if let Some(slot) = v.pointer_mut(&path) {
                *slot = with;
            }
        }
        let _ = parse_ffprobe_json(v.to_string().as_bytes());
    }

    #[test]
    fn arbitrary_bytes_as_ffprobe_output_are_answered(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_ffprobe_json(&bytes);
    }

    #[test]
    fn arbitrary_progress_lines_are_answered(
        lines in prop::collection::vec(prop_oneof![
            ".{0,60}",
            "(out_time_us|out_time_ms|out_time|frame|fps|speed|progress)=.{0,20}",
        ], 0..40),
        duration in prop_oneof![Just(0.0), Just(-1.0), Just(f64::NAN), Just(f64::INFINITY), 0.001f64..1e7],
    ) {
        let mut tracker = ProgressTracker::new(duration);
        for line in &lines {
            let _ = parse_progress_line(line);
            if let Some(p) = tracker.feed(line) {
                prop_assert!(p.percent.is_finite() && (0.0..=100.0).contains(&p.percent), "{:?}", p);
            }
        }
    }
}
