//! Heredocs as BuildKit's dockerfile_heredoc_test.go tests them and reference.md "Here-Documents"
//! documents them, for RUN, COPY and ADD.

use crate::support::*;

/// One build covering: testCopyHeredoc (named after the delimiter when the destination is a
/// directory: the reference's `COPY <<robots.txt <<humans.txt /dir/`), testHeredocChmod
/// (`COPY --chmod`), `COPY --chown`, testAddHeredoc, testCopyHeredocQuoted with double quotes
/// (no expansion), ENV expansion in an unquoted COPY heredoc, an empty heredoc, and
/// testHeredocIndent (`<<-` strips leading tabs of the body and the terminator).
#[test]
fn heredocs_for_copy_and_add() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let dockerfile = "FROM busybox:latest\n\
        ENV WHO=world\n\
        COPY <<robots.txt <<humans.txt /site/\nUser-agent: *\nrobots.txt\nhumans\nhumans.txt\n\
        COPY --chmod=755 <<EOF /script.sh\n#!/bin/sh\necho script\nEOF\n\
        COPY --chown=1000:2000 <<EOF /owned.txt\nowned\nEOF\n\
        ADD <<EOF /added.txt\nadded $WHO\nEOF\n\
        COPY <<\"EOF\" /double-quoted.txt\nhello $WHO\nEOF\n\
        COPY <<EOF /expanded.txt\nhello $WHO\nEOF\n\
        COPY <<EOF /empty.txt\nEOF\n\
        COPY <<-EOF /tabs.txt\n\tindented\n\t\tdouble\n\tEOF\n";
    let image = build_df(&env, "dfheredoc-copy", dockerfile, &[], &[]);
    let tree = image.tree();
    assert_eq!(tree.text("site/robots.txt"), "User-agent: *\n");
    assert_eq!(tree.text("site/humans.txt"), "humans\n");
    assert_eq!(tree.node("script.sh").mode, 0o755);
    assert_eq!(tree.text("script.sh"), "#!/bin/sh\necho script\n");
    assert_eq!(tree.node("owned.txt").owner(), (1000, 2000));
    assert_eq!(tree.text("added.txt"), "added world\n");
    assert_eq!(tree.text("double-quoted.txt"), "hello $WHO\n");
    assert_eq!(tree.text("expanded.txt"), "hello world\n");
    assert_eq!(tree.text("empty.txt"), "");
    assert_eq!(tree.text("tabs.txt"), "indented\ndouble\n");
}

/// One build covering: testRunHeredoc without a shebang (the body goes to the shell as is, so
/// a failing line does not stop the rest: no implicit `set -e`), the heredoc as stdin of a
/// command (`RUN sh <<EOF`, reference example `RUN python3 <<EOF`), a quoted delimiter in
/// RUN keeping `$` for the shell unexpanded, an unquoted one expanded by the shell (ARG visible),
/// `<<-` in RUN, a `#!` body with arguments run as a script, and testHeredocsInRunWithSetE
/// failing the step when the script exits non-zero (separate failing build).
#[test]
fn heredocs_for_run() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let dockerfile = "FROM busybox:latest\n\
        ARG GREETING=hi\n\
        RUN <<EOF\nfalse\necho after-false > /no-set-e\nEOF\n\
        RUN sh <<EOF\necho via-stdin > /stdin\nEOF\n\
        RUN cat <<'EOF' > /quoted\n$GREETING\nEOF\n\
        RUN cat <<EOF > /unquoted\n$GREETING\nEOF\n\
        RUN <<-EOF\n\techo tabbed > /tabbed\n\tEOF\n\
        RUN <<EOF\n#!/bin/sh -e\necho \"args: $# shell-e\" > /shebang-e\nEOF\n";
    let image = build_df(&env, "dfheredoc-run", dockerfile, &[], &[]);
    let tree = image.tree();
    assert_eq!(tree.text("no-set-e"), "after-false\n");
    assert_eq!(tree.text("stdin"), "via-stdin\n");
    assert_eq!(tree.text("quoted"), "$GREETING\n");
    assert_eq!(tree.text("unquoted"), "hi\n");
    assert_eq!(tree.text("tabbed"), "tabbed\n");
    assert_eq!(tree.text("shebang-e"), "args: 0 shell-e\n");

    let stderr = build_df_err(
        &env,
        "FROM busybox:latest\nRUN <<EOF\n#!/bin/sh -e\nfalse\necho never\nEOF\n",
        &[],
        &[],
    );
    assert!(
        stderr.contains("Dockerfile:2") && stderr.contains("exit code: 1"),
        "{stderr}"
    );
}
