//! WORKDIR as BuildKit's dockerfile_test.go (testWorkdirCreatesDir, testWorkdirUser,
//! testWorkdirExists, testWorkdirCopyIgnoreRelative) and reference.md "WORKDIR" describe it.

use crate::support::*;

/// One build covering: testWorkdirCreatesDir (mode 0755, root), reference "WORKDIR"
/// (relative paths append to the previous WORKDIR: /a, b, c -> /a/b/c; `..` climbs), the
/// reference's `ENV DIRPATH=/path` + `WORKDIR $DIRPATH/$DIRNAME` example (undefined variables
/// are empty), testWorkdirUser (created as the current USER, with its group), testWorkdirExists
/// (an existing directory keeps its owner), WORKDIR as the cwd of RUN and the base of relative
/// COPY and ADD destinations, and the final WorkingDir in the config.
#[test]
fn workdir_paths_owners_and_uses() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let dockerfile = "FROM busybox:latest\n\
        WORKDIR /created\n\
        WORKDIR /a\n\
        WORKDIR b\n\
        WORKDIR c\n\
        RUN pwd > /relative-pwd\n\
        WORKDIR ../d\n\
        RUN pwd > /dotdot-pwd\n\
        ENV DIRPATH=/path\n\
        WORKDIR $DIRPATH/$DIRNAME\n\
        RUN pwd > /env-pwd\n\
        USER app\n\
        WORKDIR /as-app\n\
        USER app:extra\n\
        WORKDIR /as-app-extra\n\
        USER root\n\
        RUN mkdir /existing && chown 1000:1000 /existing\n\
        WORKDIR /existing\n\
        WORKDIR /files\n\
        COPY f.txt copied.txt\n\
        ADD f.txt added/\n\
        RUN echo here > run.txt\n";
    let image = build_df(
        &env,
        "dfworkdir",
        dockerfile,
        &[("f.txt", file("f\n"))],
        &[],
    );
    let tree = image.tree();
    let created = tree.node("created");
    assert!(created.is_dir());
    assert_eq!((created.mode, created.owner()), (0o755, (0, 0)));
    assert_eq!(tree.text("relative-pwd"), "/a/b/c\n");
    assert_eq!(tree.text("dotdot-pwd"), "/a/b/d\n");
    assert_eq!(tree.text("env-pwd"), "/path\n");
    assert_eq!(tree.node("as-app").owner(), (1000, 1000));
    assert_eq!(tree.node("as-app-extra").owner(), (1000, 2000));
    assert_eq!(tree.node("existing").owner(), (1000, 1000));
    assert_eq!(tree.text("files/copied.txt"), "f\n");
    assert_eq!(tree.text("files/added/f.txt"), "f\n");
    assert_eq!(tree.text("files/run.txt"), "here\n");
    assert_eq!(config_field(&image, "WorkingDir"), "/files");
}

/// Builds covering: a relative WORKDIR on an image whose WorkingDir is set appends to it
/// (reference "WORKDIR": "relative to the path of the previous WORKDIR instruction", which the
/// base image provides), a WORKDIR with no effect on the filesystem when it exists (the base
/// dir is not re-created: no layer entries beyond it), and the history entry
/// `WORKDIR /path` BuildKit writes.
#[test]
fn workdir_relative_to_the_base_image() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    build_df(
        &env,
        "dfworkdir-base",
        "FROM busybox:latest\nWORKDIR /srv\n",
        &[],
        &["-t", "wd-base:1"],
    );
    let image = build_df(
        &env,
        "dfworkdir-child",
        "FROM wd-base:1\nWORKDIR app\nRUN pwd > /pwd\nWORKDIR /data\n",
        &[],
        &[],
    );
    assert_eq!(image.tree().text("pwd"), "/srv/app\n");
    assert!(image.tree().node("srv/app").is_dir());
    assert_eq!(config_field(&image, "WorkingDir"), "/data");
    let history = created_by(&image);
    assert!(
        history.contains(&"WORKDIR /srv/app".to_string()),
        "{history:?}"
    );
    let top = image.layer(image.layer_count() - 1);
    assert!(
        top.paths().iter().all(|p| !p.starts_with("data/")),
        "WORKDIR on an existing dir adds nothing below it: {:?}",
        top.paths()
    );
}
