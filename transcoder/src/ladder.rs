//! The adaptive-bitrate ladder: which sizes to encode and how many bits each may spend.
//!
//! Rungs are named by the shorter side of the displayed picture, so a portrait phone video gets
//! the same ladder as a landscape one, turned on its side. The ladder never upscales.

/// Shorter-side sizes of the standard rungs, largest first.
pub const RUNG_SIZES: [u32; 5] = [1080, 720, 480, 360, 240];

/// One rendition to encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rung {
    /// Folder name and label, by the shorter side (`720p`).
    pub name: String,
    /// Output width in pixels (even).
    pub width: u32,
    /// Output height in pixels (even).
    pub height: u32,
    /// Video bitrate cap (x264 maxrate) in kbit/s.
    pub maxrate_kbps: u32,
    /// VBV buffer in kbit (x264 bufsize): two seconds at maxrate, which lets CRF breathe on
    /// hard scenes while keeping each segment's peak near the cap.
    pub bufsize_kbps: u32,
    /// AAC bitrate in kbit/s when the source has audio.
    pub audio_kbps: u32,
}

/// Video caps at 30 fps for a 16:9 picture, by shorter side: close to Apple's HLS authoring
/// guidance for H.264, trimmed a little since capped CRF rarely needs the whole cap.
fn base_maxrate_kbps(short_side: u32) -> u32 {
    match short_side {
        1080 => 5000,
        720 => 3000,
        480 => 1400,
        360 => 800,
        _ => 400,
    }
}

fn audio_kbps(short_side: u32) -> u32 {
    match short_side {
        480.. => 128,
        360..=479 => 96,
        _ => 64,
    }
}

/// Rounds to the nearest even number, at least 2: x264 with 4:2:0 needs even dimensions.
fn even(x: f64) -> u32 {
    (((x / 2.0).round() as u32) * 2).max(2)
}

/// Computes the ladder for a picture of `width` x `height` as displayed (rotation and pixel
/// aspect already applied) at `fps` frames per second.
pub fn compute_ladder(width: u32, height: u32, fps: f64) -> Vec<Rung> {
    let portrait = height > width;
    let (short, long) = if portrait {
        (width, height)
    } else {
        (height, width)
    };
    let aspect = long as f64 / short.max(1) as f64;
    let sizes: Vec<(u32, u32)> = if short < RUNG_SIZES[RUNG_SIZES.len() - 1] {
        // Smaller than the smallest rung: one rung at its own size, never upscaled.
        vec![(short & !1, long & !1)]
    } else {
        RUNG_SIZES
            .iter()
            .filter(|&&s| s <= short)
            .map(|&s| (s, even(s as f64 * aspect)))
            .collect()
    };
    sizes
        .into_iter()
        .map(|(s, l)| {
            let s = s.max(2);
            let l = l.max(2);
            let (width, height) = if portrait { (s, l) } else { (l, s) };
            let maxrate_kbps = scaled_maxrate(s, width, height, fps);
            Rung {
                name: format!("{s}p"),
                width,
                height,
                maxrate_kbps,
                bufsize_kbps: maxrate_kbps * 2,
                audio_kbps: audio_kbps(s),
            }
        })
        .collect()
}

/// Keeps the rungs named in `wanted` (by shorter side); all of them when `wanted` is empty.
/// A source smaller than every wanted rung keeps its smallest rung rather than none.
pub fn select_rungs(ladder: Vec<Rung>, wanted: &[u32]) -> Vec<Rung> {
    if wanted.is_empty() {
        return ladder;
    }
    let short = |r: &Rung| r.width.min(r.height);
    let smallest = ladder.last().cloned();
    let kept: Vec<Rung> = ladder
        .into_iter()
        .filter(|r| wanted.contains(&short(r)))
        .collect();
    if kept.is_empty() {
        smallest.into_iter().collect()
    } else {
        kept
    }
}

/// Scales the 16:9/30 fps cap of a rung to the pixels it really has (a 2.39:1 film at 1080p
/// has a third more than 1920x1080; a tiny source far fewer) and to high frame rates.
fn scaled_maxrate(short: u32, width: u32, height: u32, fps: f64) -> u32 {
    let reference = RUNG_SIZES
        .iter()
        .copied()
        .find(|&s| s <= short)
        .unwrap_or(240);
    let reference_pixels = (even(reference as f64 * 16.0 / 9.0) * reference) as f64;
    let pixel_factor = (width as f64 * height as f64 / reference_pixels).clamp(0.25, 1.5);
    // Motion costs bits sub-linearly: 60 fps needs about half as much again as 30 fps.
    let fps_factor = if fps > 31.0 { 1.5 } else { 1.0 };
    let kbps = base_maxrate_kbps(reference) as f64 * pixel_factor * fps_factor;
    (kbps.round() as u32).max(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(w: u32, h: u32) -> Vec<(u32, u32)> {
        compute_ladder(w, h, 30.0)
            .iter()
            .map(|r| (r.width, r.height))
            .collect()
    }

    /// (label, displayed source size, expected rung sizes)
    type Case = (&'static str, (u32, u32), &'static [(u32, u32)]);

    #[test]
    fn ladder_table() {
        let cases: &[Case] = &[
            (
                "720p",
                (1280, 720),
                &[(1280, 720), (854, 480), (640, 360), (426, 240)],
            ),
            ("370p never upscales", (658, 370), &[(640, 360), (426, 240)]),
            (
                "portrait 1080x1920",
                (1080, 1920),
                &[
                    (1080, 1920),
                    (720, 1280),
                    (480, 854),
                    (360, 640),
                    (240, 426),
                ],
            ),
            // A 1920x1080 file with 90 degrees of rotation is displayed as 1080x1920: the probe
            // hands the ladder the displayed size, so it is the portrait case.
            (
                "rotated 90 (displayed size)",
                (1080, 1920),
                &[
                    (1080, 1920),
                    (720, 1280),
                    (480, 854),
                    (360, 640),
                    (240, 426),
                ],
            ),
            (
                "odd 853x481",
                (853, 481),
                &[(852, 480), (638, 360), (426, 240)],
            ),
            ("176x144 under the smallest rung", (176, 144), &[(176, 144)]),
            ("odd tiny 175x143", (175, 143), &[(174, 142)]),
            (
                "4K",
                (3840, 2160),
                &[
                    (1920, 1080),
                    (1280, 720),
                    (854, 480),
                    (640, 360),
                    (426, 240),
                ],
            ),
            (
                "square 500x500",
                (500, 500),
                &[(480, 480), (360, 360), (240, 240)],
            ),
            ("exactly 240", (320, 240), &[(320, 240)]),
        ];
        for (label, (w, h), want) in cases {
            assert_eq!(sizes(*w, *h), want.to_vec(), "{label}");
        }
    }

    #[test]
    fn every_dimension_is_even() {
        for (w, h) in [(853, 481), (1921, 1081), (999, 777), (3, 3), (241, 1001)] {
            for r in compute_ladder(w, h, 30.0) {
                assert!(r.width % 2 == 0 && r.height % 2 == 0, "{w}x{h} gave {r:?}");
                assert!(
                    r.width <= w.max(2) && r.height <= h.max(2),
                    "{w}x{h} upscaled: {r:?}"
                );
            }
        }
    }

    #[test]
    fn selected_rungs() {
        let names = |l: Vec<Rung>| l.into_iter().map(|r| r.name).collect::<Vec<_>>();
        let full = || compute_ladder(1920, 1080, 30.0);
        assert_eq!(names(select_rungs(full(), &[])).len(), 5);
        assert_eq!(names(select_rungs(full(), &[720, 360])), ["720p", "360p"]);
        assert_eq!(
            names(select_rungs(compute_ladder(640, 360, 30.0), &[1080])),
            ["240p"]
        );
    }

    #[test]
    fn names_follow_the_shorter_side() {
        let names: Vec<String> = compute_ladder(1080, 1920, 30.0)
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["1080p", "720p", "480p", "360p", "240p"]);
    }

    #[test]
    fn caps_shrink_down_the_ladder_and_grow_with_frame_rate() {
        let ladder = compute_ladder(1920, 1080, 30.0);
        let caps: Vec<u32> = ladder.iter().map(|r| r.maxrate_kbps).collect();
        assert_eq!(caps, [5000, 3000, 1400, 800, 400]);
        assert!(ladder.iter().all(|r| r.bufsize_kbps == 2 * r.maxrate_kbps));
        let fast = compute_ladder(1920, 1080, 60.0);
        assert_eq!(fast[0].maxrate_kbps, 7500);
        // A wide film spends more on its extra pixels, within bounds.
        let wide = compute_ladder(2582, 1080, 24.0);
        assert!(
            wide[0].maxrate_kbps > 5000 && wide[0].maxrate_kbps <= 7500,
            "{:?}",
            wide[0]
        );
        // A tiny source is capped far below the 240p rung, but never absurdly low.
        let tiny = compute_ladder(176, 144, 15.0);
        assert!(
            tiny[0].maxrate_kbps >= 100 && tiny[0].maxrate_kbps < 400,
            "{:?}",
            tiny[0]
        );
    }
}
