//! The module ladder check. Each crate's top-level modules stand on numbered levels, written
//! down once, in `docs/architecture.md` ("Module ladder", a table per crate). A module may use
//! modules on lower levels only: the stack reads one way, from `cli` down to `probe`, and the
//! document cannot drift from the code, because this check reads both.
//!
//! What counts as a use is every `crate::NAME` on a line of code (comments are skipped); a
//! module must also be in the table, so a new one gets a level when it is added.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The test each crate runs: its `src/` against its table in the workspace's
/// `docs/architecture.md`; panics naming every problem.
pub fn assert_crate(manifest_dir: &str, crate_name: &str) {
    let root = Path::new(manifest_dir);
    let doc = root.join("../docs/architecture.md");
    if let Err(problems) = check(&doc, crate_name, &root.join("src")) {
        panic!("{}", problems.join("\n"));
    }
}

/// Checks the crate whose sources are under `src` against the table for `crate_name` in `doc`.
/// Returns every problem, one line each.
pub fn check(doc: &Path, crate_name: &str, src: &Path) -> Result<(), Vec<String>> {
    let text = std::fs::read_to_string(doc).map_err(|e| vec![format!("{}: {e}", doc.display())])?;
    let levels =
        levels_in(&text, crate_name).map_err(|e| vec![format!("{}: {e}", doc.display())])?;
    let modules = modules_in(src).map_err(|e| vec![format!("{}: {e}", src.display())])?;
    let mut problems = Vec::new();
    for name in modules.keys() {
        if !levels.contains_key(name) {
            problems.push(format!(
                "module `{name}` has no level in the {crate_name} table of {}",
                doc.display()
            ));
        }
    }
    for name in levels.keys() {
        if !modules.contains_key(name) {
            problems.push(format!(
                "the {crate_name} table names `{name}`, which is not a module"
            ));
        }
    }
    for (name, files) in &modules {
        let Some(&level) = levels.get(name) else {
            continue;
        };
        for file in files {
            let code = std::fs::read_to_string(file).unwrap_or_default();
            for (line_no, line) in code.lines().enumerate() {
                for used in crate_uses(line) {
                    let Some(&used_level) = levels.get(used) else {
                        continue;
                    };
                    if used != name && used_level >= level {
                        problems.push(format!(
                            "{}:{}: `{name}` (level {level}) uses `{used}` (level {used_level}): \
                             only lower levels may be used",
                            file.display(),
                            line_no + 1
                        ));
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The table under `### crate_name` (within `## Module ladder`): module -> level, from rows
/// `| 3 | `name` | purpose |`.
fn levels_in(doc: &str, crate_name: &str) -> Result<BTreeMap<String, u32>, String> {
    let mut in_ladder = false;
    let mut in_crate = false;
    let mut levels = BTreeMap::new();
    for line in doc.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            in_ladder = heading.trim() == "Module ladder";
            in_crate = false;
        } else if let Some(heading) = line.strip_prefix("### ") {
            in_crate = in_ladder && heading.trim().trim_matches('`') == crate_name;
        } else if in_crate && line.starts_with('|') {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let (Some(level), Some(module)) = (cells.get(1), cells.get(2)) else {
                continue;
            };
            let Ok(level) = level.parse::<u32>() else {
                continue; // the header and the separator
            };
            levels.insert(module.trim_matches('`').to_string(), level);
        }
    }
    if levels.is_empty() {
        return Err(format!(
            "no table for `{crate_name}` under \"## Module ladder\", \"### {crate_name}\""
        ));
    }
    Ok(levels)
}

/// The crate's top-level modules (`name.rs` or `name/`, not `lib.rs` or `main.rs`) and their
/// files.
fn modules_in(src: &Path) -> std::io::Result<BTreeMap<String, Vec<PathBuf>>> {
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(src)? {
        let path = entry?.path();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        if path.is_dir() {
            let mut files = Vec::new();
            rust_files(&path, &mut files)?;
            modules.insert(name, files);
        } else if path.extension().is_some_and(|e| e == "rs") && name != "lib" && name != "main" {
            modules.insert(name, vec![path]);
        }
    }
    Ok(modules)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The module names a line of code uses through `crate::`; nothing for a comment.
fn crate_uses(line: &str) -> Vec<&str> {
    let code = line.split("//").next().unwrap_or("");
    code.match_indices("crate::")
        // `transcoder::crate::` never occurs; `mycrate::` must not count.
        .filter(|(at, _)| {
            !code[..*at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
        .filter_map(|(at, _)| {
            let rest = &code[at + "crate::".len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (end > 0).then(|| &rest[..end])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# Architecture

## Module ladder

### demo

| level | module | what it is for |
|---|---|---|
| 2 | `top` | uses everything |
| 1 | `middle` | uses the bottom |
| 0 | `bottom` | uses nothing |

### other

| level | module | what it is for |
|---|---|---|
| 0 | `top` | another crate's |

## Something else

| 9 | `bottom` | not in the ladder |
";

    fn crate_with(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("architecture.md"), DOC).unwrap();
        let src = dir.path().join("src");
        for (path, text) in files {
            let path = src.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        (dir, src)
    }

    #[test]
    fn downward_uses_pass_and_comments_do_not_count() {
        let (dir, src) = crate_with(&[
            ("lib.rs", "pub mod top; pub mod middle; pub mod bottom;"),
            ("main.rs", "use demo::top;"),
            (
                "top.rs",
                "use crate::middle::X;\nuse crate::bottom::{self, Y};",
            ),
            (
                "middle/mod.rs",
                "mod inner;\n/// see [`crate::top`]\nuse crate::bottom::Y; // not crate::top",
            ),
            (
                "middle/inner.rs",
                "use crate::middle::Z;\nuse crate::bottom;",
            ),
            ("bottom.rs", "pub struct Y;"),
        ]);
        let doc = dir.path().join("architecture.md");
        assert_eq!(check(&doc, "demo", &src), Ok(()));
    }

    #[test]
    fn an_upward_use_and_an_unplaced_module_are_each_named() {
        let (dir, src) = crate_with(&[
            ("top.rs", ""),
            ("middle.rs", "fn f() { crate::top::g() }"),
            ("bottom/mod.rs", "mod deep;"),
            ("bottom/deep.rs", "use crate::middle::X;"),
            ("stray.rs", ""),
        ]);
        let doc = dir.path().join("architecture.md");
        let problems = check(&doc, "demo", &src).unwrap_err();
        let middle = src.join("middle.rs");
        let deep = src.join("bottom/deep.rs");
        assert_eq!(
            problems,
            vec![
                format!(
                    "module `stray` has no level in the demo table of {}",
                    doc.display()
                ),
                format!(
                    "{}:1: `bottom` (level 0) uses `middle` (level 1): only lower levels may be used",
                    deep.display()
                ),
                format!(
                    "{}:1: `middle` (level 1) uses `top` (level 2): only lower levels may be used",
                    middle.display()
                ),
            ]
        );
    }

    #[test]
    fn a_crate_without_a_table_or_a_table_naming_a_missing_module_fails() {
        let (dir, src) = crate_with(&[("top.rs", ""), ("bottom.rs", "")]);
        let doc = dir.path().join("architecture.md");
        assert_eq!(
            check(&doc, "demo", &src),
            Err(vec![
                "the demo table names `middle`, which is not a module".to_string()
            ])
        );
        let missing = check(&doc, "absent", &src).unwrap_err();
        assert!(missing[0]
            .ends_with("no table for `absent` under \"## Module ladder\", \"### absent\""));
    }
}
