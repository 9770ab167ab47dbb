//! HDR sources on an SDR ladder: a PQ or HLG picture is tone-mapped to BT.709 once, before the
//! split into rungs, and every rung says BT.709 in its bitstream.
//!
//! Without this, an HDR picture squeezed into 8 bits keeps its PQ or HLG code values and its
//! BT.2020 tags: players show it washed out and grey, or trust the tags and hand an 8-bit
//! H.264 stream to an HDR pipeline it does not fit. The chain is zimg's (`zscale`): to linear
//! light at the top rung's size, BT.2020 to BT.709 primaries, Hable's curve for the highlights
//! (`desat=0` keeps bright colours from going white), then back to the BT.709 curve and matrix
//! in limited range, as every H.264 decoder expects.

use crate::ladder::Rung;
use crate::probe::{DynamicRange, VideoStream};

/// The tone-mapping filters for `video`, ending in 8-bit 4:2:0 at the top rung's size, or
/// `None` for a standard-range source, which the rungs scale as they are.
///
/// The first `zscale` also shrinks the picture to the top rung's size, so a 4K source is
/// tone-mapped at a quarter of its pixels; the rungs' own `scale` then has nothing to do for the
/// top rung. The input curve comes from the probe, never from the frames: a stream whose
/// frames lose their tags part-way still converts the same. HDR10 and HLG are BT.2020 by
/// definition, so primaries and matrix are stated, not read.
pub fn tone_map_chain(video: &VideoStream, top: &Rung) -> Option<String> {
    let curve = match video.dynamic_range {
        DynamicRange::Sdr => return None,
        DynamicRange::Pq => "smpte2084",
        DynamicRange::Hlg => "arib-std-b67",
    };
    Some(format!(
        "zscale=w={w}:h={h}:f=bicubic:tin={curve}:pin=2020:min=2020_ncl:t=linear:npl=100,\
         format=gbrpf32le,zscale=p=709,tonemap=tonemap=hable:desat=0,\
         zscale=t=709:m=709:r=limited,format=yuv420p",
        w = top.width,
        h = top.height,
    ))
}

/// The encoder options that write BT.709 into each rung's bitstream (the VUI), for a
/// tone-mapped source. A standard-range source keeps what it had, untagged or not: relabelling
/// its colours without converting them would be a lie.
pub fn bt709_tags(video: &VideoStream) -> &'static [&'static str] {
    match video.dynamic_range {
        DynamicRange::Sdr => &[],
        DynamicRange::Pq | DynamicRange::Hlg => &[
            "-color_primaries",
            "bt709",
            "-color_trc",
            "bt709",
            "-colorspace",
            "bt709",
        ],
    }
}
