//! The one tar extractor on arbitrary archives, as a layer and as a plain archive: an error or
//! a tree, never a panic, and nothing written outside the destination.
#![no_main]
use libfuzzer_sys::fuzz_target;

use boundary::{ExtractOptions, Format, Ownership};

fuzz_target!(|data: &[u8]| {
    let Ok(outer) = tempfile::tempdir() else {
        return;
    };
    let plain = ExtractOptions {
        format: Format::Plain,
        ownership: Ownership::Extractor,
        special_files: false,
        links: true,
        xattrs: false,
    };
    let layer = ExtractOptions {
        ownership: Ownership::Extractor,
        ..ExtractOptions::LAYER
    };
    for (name, options) in [("plain", plain), ("layer", layer)] {
        let dest = outer.path().join(name);
        if std::fs::create_dir(&dest).is_err() {
            return;
        }
        let Ok(root) = boundary::open_root(&dest) else {
            return;
        };
        let _ = boundary::extract_tar(data, &root, options);
    }
    // Only the two destinations may exist next to each other: nothing climbed out.
    let mut names: Vec<_> = std::fs::read_dir(outer.path())
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.file_name())).collect())
        .unwrap_or_default();
    names.sort();
    assert_eq!(names, ["layer", "plain"], "an entry escaped the destination");
});
