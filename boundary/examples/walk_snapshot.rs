//! Times a walk-based snapshot of one step over a tree (scripts/bench-walk runs it):
//! `cargo run --release -p rbuild-boundary --example walk_snapshot -- TREE [FILES]`.
//! Without TREE's files present, makes FILES (default 20,000) small files in 200 dirs first.
//! Prints the walk, diff and layer-write times of a step that changes one file.

// A benchmark over a scratch tree it makes: the boundary rule does not apply.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::time::Instant;

use boundary::walk::{changes, write_layer, Scan};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let tree = args.next().ok_or("usage: walk_snapshot TREE [FILES]")?;
    let files: usize = args.next().map_or(Ok(20_000), |n| n.parse())?;
    let tree = Path::new(&tree);
    if !tree.exists() {
        for i in 0..files {
            let dir = tree.join(format!("d{:03}", i % 200));
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join(format!("f{i}")), format!("{i}\n"))?;
        }
    }
    let root = boundary::open_root(tree)?;
    let skip = |_: &Path| false;
    let started = Instant::now();
    let before = Scan::of(&root, &skip)?;
    let first_walk = started.elapsed();

    std::fs::write(tree.join("d000/changed-by-the-step"), "x")?;
    let started = Instant::now();
    let after = Scan::of(&root, &skip)?;
    let walk = started.elapsed();
    let started = Instant::now();
    let found = changes(&before, &after);
    let diff = started.elapsed();
    let layer = tempfile::tempdir()?;
    let started = Instant::now();
    let report = write_layer(&root, &after, &found, boundary::open_root(layer.path())?)?;
    let write = started.elapsed();
    std::fs::remove_file(tree.join("d000/changed-by-the-step"))?;
    println!(
        "entries {}; first walk {:.1} ms; step snapshot: walk {:.1} ms, diff {:.1} ms, layer {:.1} ms ({} written); total {:.1} ms",
        after.len(),
        first_walk.as_secs_f64() * 1e3,
        walk.as_secs_f64() * 1e3,
        diff.as_secs_f64() * 1e3,
        write.as_secs_f64() * 1e3,
        report.written,
        (walk + diff + write).as_secs_f64() * 1e3
    );
    Ok(())
}
