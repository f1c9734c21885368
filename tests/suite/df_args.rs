//! ARG as BuildKit's dockerfile_test.go (testBuildArgs..., testDefaultEnvWithArgs,
//! testArgDefaultExpansion) and reference.md "ARG" document it: defaults, overrides, scope,
//! ENV winning over ARG, predefined and proxy args.

use crate::support::*;

/// One build covering: reference "ARG / Default values" (default used), testBuildArgs
/// (--build-arg overrides), testArgDefaultExpansion (a default using an earlier ARG sees its
/// overridden value), reference "Using ARG variables" (ENV of the same name wins; and the
/// `${CONT_IMG_VER:-v1.0.0}` idiom persisting an ARG into ENV), reference "Scope" (a variable
/// used before its ARG is empty: `USER ${username:-some_user}`), a --build-arg value is
/// taken literally, not expanded, a --build-arg no ARG declares is not visible, an ARG does not
/// reach the next stage, a global ARG re-declared without value takes the global default,
/// and ARG substitution in WORKDIR (reference "Environment replacement").
#[test]
fn arg_defaults_overrides_and_scope() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let dockerfile = "ARG GLOBAL=global-default\n\
        FROM busybox:latest AS other\n\
        ARG LEAK=leaky\n\
        FROM busybox:latest\n\
        ARG GLOBAL\n\
        RUN echo \"${username:-some_user}\" > /before-arg\n\
        ARG username\n\
        USER $username\n\
        USER root\n\
        ARG DEF=default\n\
        ARG OVER=default\n\
        ARG A=a-default\n\
        ARG B=${A}-b\n\
        ARG CONT_IMG_VER\n\
        ENV CONT_IMG_VER=v1.0.0\n\
        ARG PERSIST\n\
        ENV PERSIST=${PERSIST:-v1.0.0}\n\
        ARG RAW\n\
        ARG DIR=/argdir\n\
        WORKDIR $DIR\n\
        RUN echo \"def=$DEF over=$OVER b=$B cont=$CONT_IMG_VER persist=$PERSIST raw=$RAW\" > /args \
            && echo \"undeclared=${UNDECLARED:-unset} leak=${LEAK:-unset} global=$GLOBAL user=$username\" > /scope\n\
        USER $username\n";
    let image = build_df(
        &env,
        "dfargs-scope",
        dockerfile,
        &[],
        &[
            "--build-arg",
            "OVER=cli",
            "--build-arg",
            "A=cli-a",
            "--build-arg",
            "CONT_IMG_VER=v2.0.1",
            "--build-arg",
            "PERSIST=v2.0.1",
            "--build-arg",
            "RAW=$HOME and ${A}",
            "--build-arg",
            "UNDECLARED=x",
            "--build-arg",
            "username=app",
        ],
    );
    let tree = image.tree();
    assert_eq!(
        tree.text("args"),
        "def=default over=cli b=cli-a-b cont=v1.0.0 persist=v2.0.1 raw=$HOME and ${A}\n"
    );
    assert_eq!(
        tree.text("scope"),
        "undeclared=unset leak=unset global=global-default user=app\n"
    );
    assert_eq!(tree.text("before-arg"), "some_user\n");
    assert!(tree.node("argdir").is_dir());
    assert_eq!(config_field(&image, "WorkingDir"), "/argdir");
    assert_eq!(config_field(&image, "User"), "app");
    assert_eq!(env_value(&image, "CONT_IMG_VER").as_deref(), Some("v1.0.0"));
    assert_eq!(env_value(&image, "PERSIST").as_deref(), Some("v2.0.1"));
    assert_eq!(env_value(&image, "OVER"), None, "ARG is not persisted");
}

/// One build covering: reference "Automatic platform ARGs in the global scope" (TARGETOS,
/// TARGETARCH, TARGETPLATFORM, BUILDPLATFORM, BUILDOS, BUILDARCH once declared; not visible
/// before), several names in one ARG instruction, reference "Predefined ARGs" (HTTP_PROXY and
/// friends reach RUN without an ARG and stay out of the history), `--build-arg NAME` taking its
/// value from the environment (docker CLI), testBuildArgs history (`RUN |N K=V ...`).
#[test]
fn predefined_platform_and_proxy_args() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let dockerfile = "FROM busybox:latest\n\
        RUN echo \"${TARGETARCH:-unset}\" > /undeclared\n\
        ARG TARGETOS TARGETARCH\n\
        ARG TARGETPLATFORM\n\
        ARG BUILDPLATFORM\n\
        ARG BUILDOS\n\
        ARG BUILDARCH\n\
        ARG FROMENV\n\
        RUN echo \"$TARGETOS $TARGETARCH $TARGETPLATFORM $BUILDPLATFORM $BUILDOS $BUILDARCH\" > /platform \
            && echo \"$HTTP_PROXY $no_proxy\" > /proxy && echo \"$FROMENV\" > /fromenv\n";
    let ctx = df_context(&env, dockerfile, &[]);
    let archive = env.path("dfargs-platform.tar");
    let output = env
        .command([
            "build",
            "--build-arg",
            "HTTP_PROXY=http://proxy.invalid:3128",
            "--build-arg",
            "no_proxy=localhost",
            "--build-arg",
            "FROMENV",
            "-o",
            &format!("type=oci,dest={}", archive.display()),
            path_str(&ctx),
        ])
        .env("FROMENV", "from the environment")
        .output()
        .expect("run rbuild");
    assert!(output.status.success(), "{}", describe_output(&output));
    let image = OciImage::open(&archive);
    let arch = image.config()["architecture"]
        .as_str()
        .expect("arch")
        .to_string();
    let tree = image.tree();
    assert_eq!(tree.text("undeclared"), "unset\n");
    assert_eq!(
        tree.text("platform"),
        format!("linux {arch} linux/{arch} linux/{arch} linux {arch}\n")
    );
    assert_eq!(tree.text("proxy"), "http://proxy.invalid:3128 localhost\n");
    assert_eq!(tree.text("fromenv"), "from the environment\n");
    let history = created_by(&image).join("\n");
    assert!(!history.contains("proxy.invalid"), "{history}");
    assert!(
        history.contains("RUN |7 ") && history.contains("TARGETOS=linux"),
        "declared args prefix RUN in history: {history}"
    );
}
