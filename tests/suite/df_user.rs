//! USER as BuildKit's dockerfile_test.go (testUser, testUserAdditionalGids, testUserNamespace...)
//! and reference.md "USER" describe it: names and ids, groups, its effect on RUN but not COPY.

use crate::support::*;

/// One build covering: testUser (USER by name: uid and primary gid from /etc/passwd),
/// testUserAdditionalGids (supplementary groups from /etc/group when no group is given), an
/// explicit group replaces them (reference "USER": "the user will have only the specified
/// group membership"), a numeric uid present in /etc/passwd, numeric uid:gid absent from
/// /etc/passwd (reference: "When the user doesn't have a primary group then the image (or the
/// next instructions) will be run with the root group"), HOME taken from the user's
/// passwd entry, files written by RUN owned by the USER, COPY still giving root (reference
/// "COPY --chown": without it files are 0:0), USER from an ARG, and the config's User.
#[test]
fn user_ids_groups_and_effects() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let dockerfile = "FROM busybox:latest\n\
        RUN mkdir -m 777 /out\n\
        USER app\n\
        RUN id -u > /out/name-uid && id -g > /out/name-gid && id -G > /out/name-groups \
            && echo \"$HOME\" > /out/home && echo mine > /out/mine\n\
        COPY f.txt /copied.txt\n\
        USER app:app\n\
        RUN id -G > /out/explicit-groups\n\
        USER 1000\n\
        RUN id -u > /out/num-uid && id -g > /out/num-gid\n\
        USER 4242:4343\n\
        RUN id -u > /out/raw-uid && id -g > /out/raw-gid && touch /out/raw-file\n\
        USER 4242\n\
        RUN id -g > /out/raw-uid-only-gid\n\
        ARG WHO=nobody\n\
        USER $WHO\n";
    let image = build_df(&env, "dfuser", dockerfile, &[("f.txt", file("f\n"))], &[]);
    let tree = image.tree();
    assert_eq!(tree.text("out/name-uid"), "1000\n");
    assert_eq!(tree.text("out/name-gid"), "1000\n");
    assert_eq!(tree.text("out/name-groups"), "1000 2000\n");
    assert_eq!(tree.text("out/home"), "/home/app\n");
    assert_eq!(tree.node("out/mine").owner(), (1000, 1000));
    assert_eq!(tree.node("copied.txt").owner(), (0, 0));
    assert_eq!(tree.text("out/explicit-groups"), "1000\n");
    assert_eq!(tree.text("out/num-uid"), "1000\n");
    assert_eq!(tree.text("out/num-gid"), "1000\n");
    assert_eq!(tree.text("out/raw-uid"), "4242\n");
    assert_eq!(tree.text("out/raw-gid"), "4343\n");
    assert_eq!(tree.node("out/raw-file").owner(), (4242, 4343));
    assert_eq!(tree.text("out/raw-uid-only-gid"), "0\n");
    assert_eq!(config_field(&image, "User"), "nobody");
}

/// Builds covering: a USER naming no passwd entry is only config until something runs as it
/// (reference "USER"; the image builds and records it), then RUN fails naming the user
/// (testUserNotFound-style, BuildKit: "unable to find user"), and the same for an unknown
/// group.
#[test]
fn unknown_users_and_groups() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let image = build_df(
        &env,
        "dfuser-config-only",
        "FROM busybox:latest\nUSER ghost\n",
        &[],
        &[],
    );
    assert_eq!(config_field(&image, "User"), "ghost");
    let stderr = build_df_err(
        &env,
        "FROM busybox:latest\nUSER ghost\nRUN true\n",
        &[],
        &[],
    );
    assert!(
        stderr.contains("ghost") && stderr.contains("Dockerfile:3"),
        "{stderr}"
    );
    let stderr = build_df_err(
        &env,
        "FROM busybox:latest\nUSER app:phantom\nRUN true\n",
        &[],
        &[],
    );
    assert!(
        stderr.contains("phantom") && stderr.contains("Dockerfile:3"),
        "{stderr}"
    );
}
