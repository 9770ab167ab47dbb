//! No module of this crate uses one on a level above its own: docs/architecture.md, "Module
//! ladder", is both the drawing and the rule.

use std::path::Path;

#[test]
fn every_module_uses_only_lower_levels() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = root.join("../docs/architecture.md");
    if let Err(problems) = testkit::ladder::check(&doc, "common", &root.join("src")) {
        panic!("{}", problems.join("\n"));
    }
}
