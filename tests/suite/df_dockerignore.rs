//! .dockerignore as BuildKit's dockerfile_test.go (testDockerignore, testDockerignoreInvalid,
//! testDockerfileDockerignore...) and reference.md / the build-context docs ".dockerignore
//! files" describe it.

use crate::support::*;

const IGNORE: &str = "# a comment line is ignored\n\
    *.tmp\n\
    */temp*\n\
    **/*.bak\n\
    *.md\n\
    !README*.md\n\
    README-secret.md\n\
    /rooted.txt\n\
    ./dotted.txt\n\
    build\n\
    vendor\n\
    !vendor/keep.txt\n\
    file?.log\n\
    Dockerfile\n\
    .dockerignore\n";

/// One build covering the reference's ".dockerignore files" table: `*.tmp` only at the root,
/// `*/temp*` one level down, `**/*.bak` at any depth, `!` exceptions and a later line winning
/// (`*.md`, `!README*.md`, `README-secret.md`), leading `/` and `./` stripped, `#` comments,
/// a directory excluding its contents, an exception inside an excluded directory, `?`, and the
/// Dockerfile and .dockerignore themselves never copied.
#[test]
fn dockerignore_patterns() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let image = build_df(
        &env,
        "dfignore",
        "FROM busybox:latest\nCOPY . /ctx/\n",
        &[
            (".dockerignore", file(IGNORE)),
            ("root.tmp", file("x")),
            ("sub/deep.tmp", file("kept")),
            ("sub/temporary.txt", file("x")),
            ("sub/inner/temp.txt", file("kept")),
            ("a/b/c/old.bak", file("x")),
            ("notes.md", file("x")),
            ("README.md", file("kept")),
            ("README-secret.md", file("x")),
            ("rooted.txt", file("x")),
            ("dotted.txt", file("x")),
            ("# a comment line is ignored", file("kept")),
            ("build/out.o", file("x")),
            ("vendor/lib.txt", file("x")),
            ("vendor/keep.txt", file("kept")),
            ("file1.log", file("x")),
            ("file10.log", file("kept")),
            ("kept.txt", file("kept")),
        ],
        &[],
    );
    let tree = image.tree();
    let mut copied: Vec<String> = tree
        .paths()
        .filter_map(|p| p.strip_prefix("ctx/"))
        .filter(|p| tree.node(&format!("ctx/{p}")).is_file())
        .map(str::to_string)
        .collect();
    copied.sort();
    assert_eq!(
        copied,
        vec![
            "# a comment line is ignored",
            "README.md",
            "file10.log",
            "kept.txt",
            "sub/deep.tmp",
            "sub/inner/temp.txt",
            "vendor/keep.txt",
        ]
    );
    assert!(
        !tree.contains("ctx/build"),
        "an excluded dir is not created"
    );
}

/// The build-context docs: "<Dockerfile>.dockerignore" next to a Dockerfile given with -f takes
/// precedence over the context's .dockerignore (testDockerfileDockerignore).
#[test]
fn dockerfile_specific_ignore_file_wins() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[
        (
            "build.Dockerfile",
            file("FROM busybox:latest\nCOPY . /ctx/\n"),
        ),
        (
            "build.Dockerfile.dockerignore",
            file("a.txt\n*.Dockerfile*\n"),
        ),
        (".dockerignore", file("b.txt\n")),
        ("a.txt", file("a")),
        ("b.txt", file("b")),
    ]);
    let file_arg = ctx.join("build.Dockerfile");
    let (_, image) = env.build_oci("dfignore-specific", &["-f", path_str(&file_arg)], &ctx);
    let tree = image.tree();
    assert!(!tree.contains("ctx/a.txt"));
    assert_eq!(tree.text("ctx/b.txt"), "b");
    assert!(tree.contains("ctx/.dockerignore"));
}

/// testDockerignore / reference "RUN --mount=type=bind": the .dockerignore filters the build
/// context itself, so a bind mount of the context does not see ignored files either.
#[test]
fn dockerignore_applies_to_context_mounts() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let image = build_df(
        &env,
        "dfignore-mount",
        "FROM busybox:latest\nRUN --mount=target=/m ls /m > /mounted\n",
        &[
            (".dockerignore", file("*.tmp\nbuild\n")),
            ("root.tmp", file("x")),
            ("build/out.o", file("x")),
            ("kept.txt", file("kept")),
        ],
        &[],
    );
    let mounted = image.tree().text("mounted");
    assert!(mounted.lines().any(|l| l == "kept.txt"), "{mounted}");
    assert!(
        !mounted.lines().any(|l| l == "root.tmp" || l == "build"),
        "{mounted}"
    );
}
