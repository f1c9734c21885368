//! COPY flags beyond the basics, mirroring BuildKit's dockerfile_test.go (testCopyChmod,
//! testCopyLink..., testCopyParents, testCopyExclude) and reference.md "COPY --link",
//! "COPY --parents", "COPY --exclude".

use crate::support::*;

#[test]
fn copy_link_layer_holds_only_its_files_and_survives_a_base_change() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let entries = |base_change: &str| {
        vec![
            ("Dockerfile", file(format!("FROM busybox:latest\nRUN echo {base_change} > /base\nCOPY --link app.txt /opt/app/app.txt\n"))),
            ("app.txt", file("app\n")),
        ]
    };
    let first = env.context(&entries("one"));
    let (_, image) = env.build_oci("link-1", &[], &first);
    let top = image.layer(image.layer_count() - 1);
    let mut paths = top.paths();
    paths.sort();
    assert_eq!(
        paths,
        vec!["opt", "opt/app", "opt/app/app.txt"],
        "only the linked files and their dirs"
    );
    assert_eq!(image.tree().text("opt/app/app.txt"), "app\n");
    let link_layer = image.diff_ids().last().cloned();

    // The layer below changes: the --link step still hits the cache and reuses its layer.
    let second = env.context(&entries("two"));
    let output = env.rbuild([
        "build",
        "--progress",
        "plain",
        second.to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("[3/3] CACHED"), "{stderr}");
    let (_, image) = env.build_oci("link-2", &[], &second);
    assert_eq!(image.diff_ids().last().cloned(), link_layer);
    assert_eq!(image.tree().text("base"), "two\n");
}

#[test]
fn copy_parents_keeps_source_paths_and_pivots() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[
        ("Dockerfile", file("FROM busybox:latest\nCOPY --parents a/b/file.txt c/d /kept/\nCOPY --parents ./src/./lib/x.txt /pivot/\n")),
        ("a/b/file.txt", file("ab\n")),
        ("c/d/inner.txt", file("cd\n")),
        ("src/lib/x.txt", file("x\n")),
    ]);
    let (_, image) = env.build_oci("parents", &[], &ctx);
    let tree = image.tree();
    assert_eq!(tree.text("kept/a/b/file.txt"), "ab\n");
    assert_eq!(tree.text("kept/c/d/inner.txt"), "cd\n");
    assert_eq!(
        tree.text("pivot/lib/x.txt"),
        "x\n",
        "the path below /./ is kept"
    );
    assert!(!tree.contains("pivot/src"));
}

#[test]
fn copy_exclude_patterns() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[
        (
            "Dockerfile",
            file("FROM busybox:latest\nCOPY --exclude=*.log --exclude=tmp dir /out/\n"),
        ),
        ("dir/keep.txt", file("k\n")),
        ("dir/drop.log", file("d\n")),
        ("dir/sub/also.log", file("d\n")),
        ("dir/tmp/x", file("t\n")),
    ]);
    let (_, image) = env.build_oci("exclude", &[], &ctx);
    let tree = image.tree();
    assert_eq!(tree.text("out/keep.txt"), "k\n");
    assert!(!tree.contains("out/drop.log"));
    assert!(!tree.contains("out/tmp/x") && !tree.contains("out/tmp"));
    assert!(tree.contains("out/sub"));
}

#[test]
fn copy_chmod_symbolic_and_octal() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[
        (
            "Dockerfile",
            file("FROM busybox:latest\nCOPY --chmod=u+x,g-r f /sym\nCOPY --chmod=a+X d /dirs/\nCOPY --chmod=0600 f /oct\n"),
        ),
        ("f", file_mode("f\n", 0o644)),
        ("d/inner", file_mode("i\n", 0o644)),
    ]);
    let (_, image) = env.build_oci("chmod", &[], &ctx);
    let tree = image.tree();
    assert_eq!(tree.node("sym").mode, 0o704);
    assert_eq!(tree.node("oct").mode, 0o600);
    assert_eq!(
        tree.node("dirs/inner").mode,
        0o644,
        "X adds x only to dirs and executables"
    );
    let history: Vec<String> = image
        .history()
        .iter()
        .filter_map(|h| h["created_by"].as_str().map(str::to_string))
        .collect();
    assert!(
        history.contains(&"COPY --chmod=u+x,g-r f /sym # buildkit".to_string()),
        "{history:?}"
    );
}
