use super::*;
use crate::archive::output::parse_output;
use crate::build::ResultImage;
use crate::plan::Platform;

fn settings(names: &[&str]) -> ImageSettings {
    ImageSettings {
        names: names
            .iter()
            .map(|n| ImageName::parse(n).expect("valid name"))
            .collect(),
        epoch: Some(7),
        ..ImageSettings::default()
    }
}

fn platform(text: &str) -> Platform {
    Platform::parse(text).expect("valid platform")
}

fn request(outputs: &[&str]) -> ExportRequest {
    ExportRequest {
        settings: settings(&["app:1"]),
        outputs: outputs
            .iter()
            .map(|o| parse_output(o).expect("valid output"))
            .collect(),
        ..ExportRequest::default()
    }
}

#[test]
fn several_platforms_are_refused_only_by_outputs_that_hold_one_image() {
    let two = [platform("linux/amd64"), platform("linux/arm64")];
    for fine in [
        &["type=oci,dest=x.tar"][..],
        &["type=local,dest=d"],
        &["type=image,name=a:1"],
        &[],
    ] {
        assert!(request(fine).check(&two).is_ok(), "{fine:?}");
    }
    for refused in ["type=docker,dest=x.tar", "type=tar,dest=x.tar"] {
        let error = request(&[refused]).check(&two).expect_err("refused");
        assert!(
            matches!(error, ExportError::SeveralPlatforms { .. }),
            "{error}"
        );
        assert!(request(&[refused]).check(&two[..1]).is_ok(), "{refused}");
    }
}

#[test]
fn requests_that_cannot_be_carried_out_are_refused_before_building() {
    let mut push = request(&[]);
    push.settings.names.clear();
    push.push = true;
    assert!(matches!(push.check(&[]), Err(ExportError::PushWithoutName)));
    let both = request(&["-", "type=oci,dest=-"]);
    assert!(matches!(both.check(&[]), Err(ExportError::TwoOnStdout)));
}

#[test]
fn image_options_join_the_results_names_and_the_outputs() {
    let store_dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(store_dir.path()).expect("store");
    let progress = Progress::new(crate::progress::ProgressMode::Quiet);
    let quiet = |_: &str| {};
    let mut settings = settings(&["app:1", "busybox"]);
    settings.annotations.manifest.insert("a".into(), "1".into());
    let cx = ExportContext {
        store: &store,
        settings: &settings,
        progress: &progress,
        log: &quiet,
    };
    let plain = cx.image_options(None, None);
    assert_eq!(plain.tags, ["app:1", "busybox:latest"]);
    assert_eq!(plain.rewrite_timestamp, None, "no rewrite unless asked");

    let output = parse_output(
        "type=oci,dest=x,name=app:1,name=other:2,annotation.b=2,rewrite-timestamp=true,compression=zstd",
    )
    .expect("valid");
    let options = cx.image_options(Some(&output), None);
    assert_eq!(options.tags, ["app:1", "busybox:latest", "other:2"]);
    assert_eq!(options.manifest_annotations.len(), 2);
    assert_eq!(options.rewrite_timestamp, Some(7));
    assert_eq!(options.compression, Some(crate::archive::Compression::Zstd));
}

#[test]
fn tags_name_one_image_or_the_list_of_several() {
    let store_dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(store_dir.path()).expect("store");
    let image = |n: u8| ResultImage {
        platform: platform(if n == 0 { "linux/amd64" } else { "linux/arm64" }),
        image_id: store
            .put_blob(format!("{{\"n\":{n}}}").as_bytes())
            .expect("blob"),
        base: None,
    };
    let one = BuildResult {
        images: vec![image(0)],
        default: 0,
        cache: Default::default(),
        force_index: false,
    };
    tag(&store, &one, &["one:1".to_string()]).expect("tag");
    assert_eq!(
        store.resolve_image("one:1").ok(),
        Some(one.images[0].image_id.clone())
    );
    assert_eq!(store.platform_list("one:1").ok().flatten(), None);

    let two = BuildResult {
        images: vec![image(0), image(1)],
        default: 1,
        cache: Default::default(),
        force_index: false,
    };
    tag(&store, &two, &["two:1".to_string()]).expect("tag");
    assert_eq!(
        store.resolve_image("two:1").ok(),
        Some(two.images[1].image_id.clone())
    );
    assert_eq!(
        store.platform_list("two:1").ok().flatten(),
        Some(two.image_ids())
    );
}
