//! No module of this crate uses one on a level above its own: docs/architecture.md, "Module
//! ladder", is both the drawing and the rule.

#[test]
fn every_module_uses_only_lower_levels() {
    testkit::ladder::assert_crate(env!("CARGO_MANIFEST_DIR"), "consumer");
}
