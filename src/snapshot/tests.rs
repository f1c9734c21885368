//! Tests of the snapshot module over real trees (they need root, or root in a user namespace:
//! mknod of 0/0 devices, chown, user.*/trusted.* xattrs).

// Paths here are test fixtures this test creates: the boundary rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, Timespec, Timestamps, CWD};
use tar::{EntryType, Header};

use super::*;

const T: i64 = 1_600_000_000;
const CAP_NET_BIND_SERVICE_V2: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];
const UNICODE: &str = "name with spaces ünïcødé";

fn d60() -> String {
    "d".repeat(60)
}
fn f80() -> String {
    "f".repeat(80)
}
fn x150() -> String {
    "x".repeat(150)
}
fn t150() -> String {
    format!("/{}", "t".repeat(149))
}

fn mknod(path: &Path, ft: FileType, major: u32, minor: u32) {
    rfs::mknodat(
        CWD,
        path,
        ft,
        Mode::from_raw_mode(0o644),
        rfs::makedev(major, minor),
    )
    .unwrap();
}

fn whiteout(path: &Path) {
    rfs::mknodat(
        CWD,
        path,
        FileType::CharacterDevice,
        Mode::empty(),
        rfs::makedev(0, 0),
    )
    .unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn set_mtime(path: &Path, t: i64) {
    let ts = Timespec {
        tv_sec: t,
        tv_nsec: 0,
    };
    rfs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// Set every mtime under `root` (contents first, so directories keep theirs).
fn fix_mtimes(root: &Path) {
    for e in walkdir::WalkDir::new(root)
        .min_depth(1)
        .contents_first(true)
    {
        set_mtime(e.unwrap().path(), T);
    }
}

/// The test tree; `reverse` creates the same tree in the opposite order.
fn build_tree(root: &Path, reverse: bool) {
    type Step = Box<dyn Fn(&Path)>;
    let mut steps: Vec<Step> = vec![
        Box::new(|r| {
            fs::write(r.join("all_bits"), b"all").unwrap();
            chmod(&r.join("all_bits"), 0o7777);
        }),
        Box::new(|r| mknod(&r.join("blockdev"), FileType::BlockDevice, 7, 0)),
        Box::new(|r| {
            let p = r.join("cap");
            fs::write(&p, b"#!/bin/true\n").unwrap();
            chmod(&p, 0o755);
            xattr::set(&p, "user.mime", b"text/plain").unwrap();
            xattr::set(&p, "user.overlay.origin", b"junk").unwrap();
            xattr::set(&p, "trusted.foo", b"bar").unwrap();
            xattr::set(&p, "security.capability", &CAP_NET_BIND_SERVICE_V2).unwrap();
        }),
        Box::new(|r| {
            fs::create_dir_all(r.join(d60())).unwrap();
            fs::write(r.join(d60()).join(f80()), b"deep").unwrap();
        }),
        Box::new(|r| fs::create_dir(r.join("empty_dir")).unwrap()),
        Box::new(|r| mknod(&r.join("fifo"), FileType::Fifo, 0, 0)),
        Box::new(|r| fs::write(r.join("file.txt"), b"hello\n").unwrap()),
        Box::new(|r| mknod(&r.join("nulldev"), FileType::CharacterDevice, 1, 3)),
        Box::new(|r| {
            fs::create_dir(r.join("opaque")).unwrap();
            xattr::set(r.join("opaque"), "user.overlay.opaque", b"y").unwrap();
            fs::write(r.join("opaque/kept"), b"kept").unwrap();
            whiteout(&r.join("opaque/gone"));
        }),
        Box::new(|r| {
            let p = r.join("owned");
            fs::write(&p, b"mine").unwrap();
            chmod(&p, 0o640);
            std::os::unix::fs::lchown(&p, Some(1000), Some(1000)).unwrap();
        }),
        Box::new(|r| {
            fs::write(r.join("setuid"), b"su").unwrap();
            chmod(&r.join("setuid"), 0o4755);
        }),
        Box::new(|r| {
            fs::create_dir(r.join("sticky_dir")).unwrap();
            chmod(&r.join("sticky_dir"), 0o1777);
        }),
        Box::new(|r| symlink("/etc/passwd", r.join("link_abs")).unwrap()),
        Box::new(|r| symlink(t150(), r.join("long_target")).unwrap()),
        Box::new(|r| fs::write(r.join(UNICODE), b"uni").unwrap()),
        Box::new(|r| fs::write(r.join(x150()), b"long name").unwrap()),
    ];
    // order-dependent parts: hard links of one inode, whiteouts sharing one inode
    let tail: Vec<Step> = vec![Box::new(|r| {
        fs::create_dir(r.join("sub")).unwrap();
        symlink("../file.txt", r.join("sub/link_rel")).unwrap();
        fs::write(r.join("hard_a"), b"linked").unwrap();
        fs::hard_link(r.join("hard_a"), r.join("hard_b")).unwrap();
        fs::hard_link(r.join("hard_a"), r.join("sub/hard_c")).unwrap();
        whiteout(&r.join("wh_one"));
        fs::hard_link(r.join("wh_one"), r.join("wh_two")).unwrap();
        fs::hard_link(r.join("wh_one"), r.join("sub/deleted")).unwrap();
    })];
    let tail_rev: Vec<Step> = vec![Box::new(|r| {
        fs::create_dir(r.join("sub")).unwrap();
        whiteout(&r.join("sub/deleted"));
        fs::hard_link(r.join("sub/deleted"), r.join("wh_two")).unwrap();
        fs::hard_link(r.join("sub/deleted"), r.join("wh_one")).unwrap();
        fs::write(r.join("sub/hard_c"), b"linked").unwrap();
        fs::hard_link(r.join("sub/hard_c"), r.join("hard_b")).unwrap();
        fs::hard_link(r.join("sub/hard_c"), r.join("hard_a")).unwrap();
        symlink("../file.txt", r.join("sub/link_rel")).unwrap();
    })];
    if reverse {
        steps.reverse();
        steps.extend(tail_rev);
    } else {
        steps.extend(tail);
    }
    for s in &steps {
        s(root);
    }
    fix_mtimes(root);
}

#[derive(Debug, Clone, PartialEq)]
struct Ent {
    path: String,
    kind: EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    size: u64,
    link: Option<String>,
    dev: (u32, u32),
    xattrs: Vec<(String, Vec<u8>)>,
    data: Vec<u8>,
}

fn read_tar(bytes: &[u8]) -> Vec<Ent> {
    let mut ar = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut xattrs = Vec::new();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for ext in exts {
                let ext = ext.unwrap();
                if let Some(n) = ext.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.push((n.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
        let h = e.header().clone();
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        assert_eq!(h.groupname_bytes(), Some(&b""[..]));
        assert!(h.as_ustar().is_some(), "ustar headers only");
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push(Ent {
            path: String::from_utf8(e.path_bytes().into_owned()).unwrap(),
            kind: h.entry_type(),
            mode: h.mode().unwrap(),
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            mtime: h.mtime().unwrap(),
            size: e.size(),
            link: e
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap()),
            dev: (
                h.device_major().unwrap().unwrap_or(0),
                h.device_minor().unwrap().unwrap_or(0),
            ),
            xattrs,
            data,
        });
    }
    out
}

/// Names of the PAX extension headers in `bytes`, in order, with the entry that follows each.
fn raw_kinds(bytes: &[u8]) -> Vec<EntryType> {
    let mut ar = tar::Archive::new(bytes);
    let entries = ar.entries().unwrap().raw(true);
    entries.map(|e| e.unwrap().header().entry_type()).collect()
}

fn tar_of(dir: &Path) -> Vec<u8> {
    write_layer_tar(dir, Vec::new()).unwrap()
}

fn e(path: &str, kind: EntryType, mode: u32, data: &[u8]) -> Ent {
    Ent {
        path: path.to_string(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime: T as u64,
        size: data.len() as u64,
        link: None,
        dev: (0, 0),
        xattrs: Vec::new(),
        data: data.to_vec(),
    }
}

fn link(path: &str, kind: EntryType, mode: u32, target: &str) -> Ent {
    Ent {
        link: Some(target.to_string()),
        ..e(path, kind, mode, b"")
    }
}

fn expected_tree_entries() -> Vec<Ent> {
    use EntryType::*;
    let mut cap = e("cap", Regular, 0o755, b"#!/bin/true\n");
    cap.xattrs = vec![
        (
            "security.capability".into(),
            CAP_NET_BIND_SERVICE_V2.to_vec(),
        ),
        ("user.mime".into(), b"text/plain".to_vec()),
    ];
    let mut owned = e("owned", Regular, 0o640, b"mine");
    owned.uid = 1000;
    owned.gid = 1000;
    let mut blockdev = e("blockdev", Block, 0o644, b"");
    blockdev.dev = (7, 0);
    let mut nulldev = e("nulldev", Char, 0o644, b"");
    nulldev.dev = (1, 3);
    vec![
        e("all_bits", Regular, 0o7777, b"all"),
        blockdev,
        cap,
        e(&format!("{}/", d60()), Directory, 0o755, b""),
        e(&format!("{}/{}", d60(), f80()), Regular, 0o644, b"deep"),
        e("empty_dir/", Directory, 0o755, b""),
        e("fifo", Fifo, 0o644, b""),
        e("file.txt", Regular, 0o644, b"hello\n"),
        e("hard_a", Regular, 0o644, b"linked"),
        link("hard_b", Link, 0o644, "hard_a"),
        link("link_abs", Symlink, 0o777, "/etc/passwd"),
        link("long_target", Symlink, 0o777, &t150()),
        e(UNICODE, Regular, 0o644, b"uni"),
        nulldev,
        e("opaque/", Directory, 0o755, b""),
        e("opaque/.wh..wh..opq", Regular, 0, b""),
        e("opaque/kept", Regular, 0o644, b"kept"),
        owned,
        e("setuid", Regular, 0o4755, b"su"),
        e("sticky_dir/", Directory, 0o1777, b""),
        e("sub/", Directory, 0o755, b""),
        e("sub/.wh.deleted", Regular, 0, b""),
        link("sub/hard_c", Link, 0o644, "hard_a"),
        link("sub/link_rel", Symlink, 0o777, "../file.txt"),
        e(".wh.wh_one", Regular, 0, b""),
        e(".wh.wh_two", Regular, 0, b""),
        e(&x150(), Regular, 0o644, b"long name"),
    ]
}

fn set_umask_022() {
    // the expected modes assume files are created 0644 / dirs 0755
    rustix::process::umask(Mode::from_raw_mode(0o022));
}

/// GNU tar is what most people would use to look inside a layer: it must read ours back with
/// every name intact (long names through PAX and the ustar prefix, unicode, whiteouts).
#[test]
fn gnu_tar_lists_every_entry_of_the_layer() {
    set_umask_022();
    let dir = tempfile::tempdir().unwrap();
    build_tree(dir.path(), false);
    let tar_path = dir.path().join("..").join(format!(
        "{}.layer.tar",
        dir.path().file_name().unwrap().to_string_lossy()
    ));
    fs::write(&tar_path, tar_of(dir.path())).unwrap();
    let out = std::process::Command::new("tar")
        .arg("--list")
        .arg("--file")
        .arg(&tar_path)
        .output();
    let _ = fs::remove_file(&tar_path);
    let out = match out {
        Ok(out) => out,
        Err(e) => panic!("running GNU tar: {e}"),
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim_end_matches('/').to_string())
        .collect();
    let want: Vec<String> = expected_tree_entries()
        .into_iter()
        .map(|e| e.path.trim_end_matches('/').to_string())
        .collect();
    assert_eq!(listed, want);
}

#[test]
fn layer_tar_has_every_entry_right() {
    set_umask_022();
    let dir = tempfile::tempdir().unwrap();
    build_tree(dir.path(), false);
    let bytes = tar_of(dir.path());
    let got = read_tar(&bytes);
    let want = expected_tree_entries();
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    assert_eq!(got.len(), want.len(), "{:#?}", got);

    // PAX headers only where needed: xattrs (cap), long link name, long file name
    let kinds = raw_kinds(&bytes);
    let pax = kinds.iter().filter(|k| **k == EntryType::XHeader).count();
    assert_eq!(pax, 3);
    assert_eq!(kinds.len(), want.len() + 3);
    // the 141-byte name went into the ustar prefix field
    let mut ar = tar::Archive::new(&bytes[..]);
    let deep = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path_bytes().ends_with(f80().as_bytes()))
        .unwrap();
    let ustar = deep.header().as_ustar().unwrap();
    assert_eq!(&ustar.prefix[..60], d60().as_bytes());
    // ends with two zero blocks, whole blocks only
    assert_eq!(bytes.len() % 512, 0);
    assert!(bytes[bytes.len() - 1024..].iter().all(|&b| b == 0));
}

#[test]
fn layer_tar_is_deterministic() {
    set_umask_022();
    let a = tempfile::tempdir().unwrap();
    // tmpfs lists a directory in reverse creation order, ext4 in hash order: with the tree built
    // in the other order on the other file system, readdir orders really differ
    let b = match Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    };
    build_tree(a.path(), false);
    build_tree(b.path(), true);
    let ta = tar_of(a.path());
    assert_eq!(ta, tar_of(a.path()));
    let tb = tar_of(b.path());
    assert!(
        ta == tb,
        "trees built in different orders give different tars"
    );
    let da = layer_diff_id(a.path()).unwrap();
    let db = layer_diff_id(b.path()).unwrap();
    assert_eq!(da, db);
    assert_eq!(da.size, ta.len() as u64);
    let (_, direct) = {
        let mut w = DigestWriter::new(Vec::new());
        w.write_all(&ta).unwrap();
        w.finish()
    };
    assert_eq!(da, direct);
    assert!(da.as_oci().starts_with("sha256:"));
    assert_eq!(da.hex.len(), 64);
}

#[test]
fn round_trip_gives_identical_bytes() {
    set_umask_022();
    let a = tempfile::tempdir().unwrap();
    build_tree(a.path(), false);
    let ta = tar_of(a.path());
    let b = tempfile::tempdir().unwrap();
    let report = apply_layer_tar(&ta[..], b.path()).unwrap();
    assert_eq!(report.entries, expected_tree_entries().len() as u64);
    assert!(report.skipped_devices.is_empty());
    let tb = tar_of(b.path());
    if ta != tb {
        assert_eq!(read_tar(&ta), read_tar(&tb));
        panic!("same entries, different bytes");
    }
    // the applied dir is in overlay format
    let wh = fs::symlink_metadata(b.path().join("wh_one")).unwrap();
    assert_eq!(wh.mode() & libc::S_IFMT, libc::S_IFCHR);
    assert_eq!(wh.rdev(), 0);
    assert_eq!(
        xattr::get(b.path().join("opaque"), "user.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );
    assert!(!b.path().join("opaque/gone").exists());
    assert_eq!(
        xattr::get(b.path().join("cap"), "security.capability").unwrap(),
        Some(CAP_NET_BIND_SERVICE_V2.to_vec())
    );
    assert_eq!(
        xattr::get(b.path().join("cap"), "user.overlay.origin").unwrap(),
        None
    );
    let owned = fs::metadata(b.path().join("owned")).unwrap();
    assert_eq!((owned.uid(), owned.gid()), (1000, 1000));
    let su = fs::metadata(b.path().join("setuid")).unwrap();
    assert_eq!(su.mode() & 0o7777, 0o4755);
    let ha = fs::metadata(b.path().join("hard_a")).unwrap();
    let hc = fs::metadata(b.path().join("sub/hard_c")).unwrap();
    assert_eq!(ha.ino(), hc.ino());
    assert_eq!(ha.nlink(), 3);
    let dir = fs::metadata(b.path().join("sub")).unwrap();
    assert_eq!(dir.mtime(), T);
}

#[test]
fn gzip_round_trip_through_decompressing_reader() {
    set_umask_022();
    let a = tempfile::tempdir().unwrap();
    build_tree(a.path(), false);
    let ta = tar_of(a.path());
    let gz = gzip_stream(&ta[..], Vec::new(), 1).unwrap();
    let b = tempfile::tempdir().unwrap();
    let r = decompressing_reader(std::io::Cursor::new(gz)).unwrap();
    let mut digesting = DigestReader::new(r);
    apply_layer_tar(&mut digesting, b.path()).unwrap();
    std::io::copy(&mut digesting, &mut std::io::sink()).unwrap();
    let (_, d) = digesting.finish();
    assert_eq!(d, layer_diff_id(a.path()).unwrap());
    assert_eq!(tar_of(b.path()), ta);
}

#[test]
fn decompressing_reader_sniffs() {
    let mut plain = String::new();
    decompressing_reader(&b"plain text"[..])
        .unwrap()
        .read_to_string(&mut plain)
        .unwrap();
    assert_eq!(plain, "plain text");
    let mut short = Vec::new();
    decompressing_reader(&b"\x1f"[..])
        .unwrap()
        .read_to_end(&mut short)
        .unwrap();
    assert_eq!(short, b"\x1f");
    let mut empty = Vec::new();
    decompressing_reader(&b""[..])
        .unwrap()
        .read_to_end(&mut empty)
        .unwrap();
    assert!(empty.is_empty());
    let zstd = zstd::encode_all(&b"zstd layer"[..], 3).unwrap();
    let mut back = Vec::new();
    decompressing_reader(std::io::Cursor::new(zstd))
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, b"zstd layer");
    // concatenated gzip members are one stream
    let mut two = gzip_stream(&b"ab"[..], Vec::new(), 6).unwrap();
    two.extend(gzip_stream(&b"cd"[..], Vec::new(), 6).unwrap());
    let mut out = String::new();
    decompressing_reader(std::io::Cursor::new(two))
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "abcd");
}

#[test]
fn whiteout_looking_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("etc")).unwrap();
    fs::write(dir.path().join("etc/.wh.passwd"), b"").unwrap();
    let err = write_layer_tar(dir.path(), Vec::new()).unwrap_err();
    assert!(matches!(err, SnapshotError::WhiteoutName { .. }));
    assert!(err.to_string().contains("etc/.wh.passwd"), "{err}");
}

#[test]
fn opaque_root_and_trusted_opaque() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    xattr::set(r, "user.overlay.opaque", b"y").unwrap();
    whiteout(&r.join("gone"));
    fs::create_dir(r.join("t")).unwrap();
    xattr::set(r.join("t"), "trusted.overlay.opaque", b"y").unwrap();
    fs::create_dir(r.join("u")).unwrap();
    xattr::set(r.join("u"), "user.overlay.opaque", b"n").unwrap();
    whiteout(&r.join("u/x"));
    let got: Vec<String> = read_tar(&tar_of(r)).into_iter().map(|e| e.path).collect();
    // whiteouts under an opaque dir (here the root) are redundant and dropped
    assert_eq!(got, [".wh..wh..opq", "t/", "t/.wh..wh..opq", "u/"]);

    xattr::remove(r, "user.overlay.opaque").unwrap();
    let got: Vec<String> = read_tar(&tar_of(r)).into_iter().map(|e| e.path).collect();
    assert_eq!(got, [".wh.gone", "t/", "t/.wh..wh..opq", "u/", "u/.wh.x"]);
}

#[test]
fn big_ids_and_mtimes_use_pax() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big");
    fs::write(&p, b"x").unwrap();
    std::os::unix::fs::lchown(&p, Some(3_000_000), Some(4_000_000)).unwrap();
    set_mtime(&p, -5);
    let bytes = tar_of(dir.path());
    let mut ar = tar::Archive::new(&bytes[..]);
    let mut entries = ar.entries().unwrap();
    let mut e = entries.next().unwrap().unwrap();
    let mut recs: Vec<(String, String)> = e
        .pax_extensions()
        .unwrap()
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (r.key().unwrap().to_string(), r.value().unwrap().to_string())
        })
        .collect();
    recs.sort();
    assert_eq!(
        recs,
        [
            ("gid".to_string(), "4000000".to_string()),
            ("mtime".to_string(), "-5".to_string()),
            ("uid".to_string(), "3000000".to_string()),
        ]
    );
    assert_eq!(e.header().uid().unwrap(), 3_000_000);
    assert_eq!(e.header().gid().unwrap(), 4_000_000);

    let b = tempfile::tempdir().unwrap();
    apply_layer_tar(&bytes[..], b.path()).unwrap();
    let m = fs::symlink_metadata(b.path().join("big")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mtime()), (3_000_000, 4_000_000, -5));
    assert_eq!(tar_of(b.path()), bytes);
}

// ---------------------------------------------------------------------------------------------
// applying hostile and odd tars

/// A raw header with the name bytes written as is (no validation by the tar crate).
fn raw_header(name: &[u8], kind: EntryType, size: u64) -> Header {
    test_support::tar::raw_header(name, kind, size, T as u64)
}

/// A raw tar whose entries all carry the mtime `T`.
fn raw_tar() -> test_support::tar::RawTar {
    test_support::tar::RawTar::new().mtime(T as u64)
}

/// A layer dir inside its own temp dir, to check that nothing lands beside it.
struct Sandbox {
    outer: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let outer = tempfile::tempdir().unwrap();
        fs::create_dir(outer.path().join("layer")).unwrap();
        Sandbox { outer }
    }
    fn layer(&self) -> std::path::PathBuf {
        self.outer.path().join("layer")
    }
    fn apply(&self, tar: &[u8]) -> Result<boundary::ExtractReport, SnapshotError> {
        apply_layer_tar(tar, &self.layer())
    }
    fn assert_contained(&self) {
        let names: Vec<_> = fs::read_dir(self.outer.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            [OsStr::new("layer")],
            "something landed outside the layer dir"
        );
        let parent = self.outer.path().parent().unwrap();
        for n in ["escape", "abs_file", "evil", "outside"] {
            assert!(
                !parent.join(n).exists(),
                "{n} escaped to {}",
                parent.display()
            );
        }
    }
    fn list(&self) -> Vec<String> {
        walkdir::WalkDir::new(self.layer())
            .min_depth(1)
            .sort_by_file_name()
            .into_iter()
            .map(|e| {
                let e = e.unwrap();
                e.path()
                    .strip_prefix(self.layer())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }
}

#[test]
fn dotdot_and_absolute_names_are_refused() {
    for name in [
        "../escape",
        "a/../../escape",
        "/abs_file",
        "./../outside",
        "..",
        "/",
    ] {
        let sb = Sandbox::new();
        let tar = raw_tar().file("ok", b"1").file(name, b"bad").finish();
        let err = sb.apply(&tar).unwrap_err();
        assert!(
            matches!(
                err,
                SnapshotError::Extract {
                    source: boundary::ExtractError::UnsafePath { .. },
                    ..
                }
            ),
            "{name}: {err:?}"
        );
        assert!(crate::error_chain(&err).contains(name), "{err}");
        sb.assert_contained();
    }
    // a long PAX path with .. is refused just the same
    let sb = Sandbox::new();
    let long = format!("{}/../../escape", "a".repeat(120));
    let tar = raw_tar()
        .pax(&[("path", long.as_bytes())])
        .file("placeholder", b"x")
        .finish();
    assert!(matches!(
        sb.apply(&tar),
        Err(SnapshotError::Extract {
            source: boundary::ExtractError::UnsafePath { .. },
            ..
        })
    ));
    sb.assert_contained();
}

#[test]
fn dot_prefixed_names_are_normalised() {
    let sb = Sandbox::new();
    let tar = raw_tar()
        .dir("./", 0o755)
        .dir("./a/", 0o750)
        .file("./a/b", b"b")
        .file("a//./c", b"c")
        .finish();
    let report = sb.apply(&tar).unwrap();
    assert_eq!(report.entries, 4);
    assert_eq!(sb.list(), ["a", "a/b", "a/c"]);
    let m = fs::metadata(sb.layer().join("a")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o750);
    assert_eq!(m.mtime(), T);
}

#[test]
fn symlinks_cannot_carry_writes_outside() {
    let sb = Sandbox::new();
    let outer_abs = sb.outer.path().to_str().unwrap().to_string();
    let tar = raw_tar()
        .link("x", EntryType::Symlink, "/")
        .file("x/etc/passwd", b"pwned")
        .link("up", EntryType::Symlink, "../../../..")
        .file("up/evil", b"evil")
        .link("abs", EntryType::Symlink, &outer_abs)
        .dir(&format!("{}/", outer_abs.trim_start_matches('/')), 0o755)
        .file("abs/escape", b"escape")
        .link("file_link", EntryType::Symlink, "/etc/hostname")
        .file("file_link", b"replaced, not followed")
        .finish();
    sb.apply(&tar).unwrap();
    sb.assert_contained();
    let layer = sb.layer();
    assert_eq!(fs::read(layer.join("etc/passwd")).unwrap(), b"pwned");
    assert_eq!(fs::read(layer.join("evil")).unwrap(), b"evil");
    let inner = layer.join(outer_abs.trim_start_matches('/')).join("escape");
    assert_eq!(fs::read(inner).unwrap(), b"escape");
    assert_ne!(fs::read("/etc/passwd").unwrap(), b"pwned");
    let fl = fs::symlink_metadata(layer.join("file_link")).unwrap();
    assert!(fl.is_file());
    assert_eq!(
        fs::read(layer.join("file_link")).unwrap(),
        b"replaced, not followed"
    );
    // the symlinks themselves are kept as written
    assert_eq!(fs::read_link(layer.join("x")).unwrap(), Path::new("/"));

    // a parent that is a dangling symlink is followed inside the layer, as containerd does:
    // its target is made there, never on the host
    let sb = Sandbox::new();
    let tar = raw_tar()
        .link("abs", EntryType::Symlink, &outer_abs)
        .file("abs/escape", b"escape")
        .finish();
    sb.apply(&tar).unwrap();
    sb.assert_contained();
    let inner = sb
        .layer()
        .join(outer_abs.trim_start_matches('/'))
        .join("escape");
    assert_eq!(fs::read(inner).unwrap(), b"escape");
}

#[test]
fn hardlinks_only_to_earlier_entries() {
    let cases: [(&str, &str); 5] = [
        ("h", "../outside"),
        ("h", "/etc/passwd"),
        ("h", "nothere"),
        ("h", "later"),
        ("h", "s/passwd"),
    ];
    for (name, target) in cases {
        let sb = Sandbox::new();
        let tar = raw_tar()
            .link("s", EntryType::Symlink, "/etc")
            .link(name, EntryType::Link, target)
            .file("later", b"l")
            .finish();
        let err = sb.apply(&tar).unwrap_err();
        assert!(
            matches!(
                err,
                SnapshotError::Extract {
                    source: boundary::ExtractError::HardlinkTarget { .. },
                    ..
                }
            ),
            "{target}: {err:?}"
        );
        assert!(crate::error_chain(&err).contains("tar entry h"), "{err}");
        sb.assert_contained();
    }
    // to a directory or a whiteout: refused too
    let sb = Sandbox::new();
    let tar = raw_tar()
        .file("d", b"")
        .dir("d/", 0o755)
        .link("h", EntryType::Link, "d")
        .finish();
    assert!(matches!(
        sb.apply(&tar),
        Err(SnapshotError::Extract {
            source: boundary::ExtractError::HardlinkTarget { .. },
            ..
        })
    ));
    let sb = Sandbox::new();
    let tar = raw_tar()
        .file("w", b"")
        .file(".wh.w", b"")
        .link("h", EntryType::Link, "w")
        .finish();
    assert!(matches!(
        sb.apply(&tar),
        Err(SnapshotError::Extract {
            source: boundary::ExtractError::HardlinkTarget { .. },
            ..
        })
    ));
    // and a good one works, through ./ spelling too
    let sb = Sandbox::new();
    let tar = raw_tar()
        .file("./t", b"data")
        .link("l", EntryType::Link, "./t")
        .finish();
    sb.apply(&tar).unwrap();
    let a = fs::metadata(sb.layer().join("t")).unwrap();
    let b = fs::metadata(sb.layer().join("l")).unwrap();
    assert_eq!(a.ino(), b.ino());
}

#[test]
fn overlay_metadata_cannot_be_smuggled() {
    let sb = Sandbox::new();
    let mut h = raw_header(b"wh", EntryType::Char, 0);
    h.set_device_major(0).unwrap();
    h.set_device_minor(0).unwrap();
    let err = sb.apply(&raw_tar().raw(h, b"").finish()).unwrap_err();
    assert!(
        matches!(
            err,
            SnapshotError::Extract {
                source: boundary::ExtractError::WhiteoutDevice { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(crate::error_chain(&err).contains("wh"));
    assert!(sb.list().is_empty());

    // overlay xattrs (rootless buildah and podman leave origin and impure on dirs) are
    // stripped and reported, never applied
    for name in [
        "user.overlay.opaque",
        "trusted.overlay.opaque",
        "user.overlay.redirect",
    ] {
        let sb = Sandbox::new();
        let key = format!("SCHILY.xattr.{name}");
        let tar = raw_tar()
            .pax(&[(key.as_str(), b"y")])
            .dir("d/", 0o755)
            .finish();
        let report = sb.apply(&tar).unwrap();
        assert_eq!(report.stripped_xattrs.get(name), Some(&1), "{report:?}");
        assert_eq!(sb.list(), ["d"]);
        let d = sb.layer().join("d");
        for xattr in xattr::list(&d).unwrap() {
            assert!(
                !xattr.to_string_lossy().contains("overlay"),
                "{xattr:?} applied"
            );
        }
        let notice = crate::snapshot::report_notice(&report).unwrap();
        assert!(notice.contains(name), "{notice}");
    }

    // other xattrs: user.* and security.capability kept, the rest skipped
    let sb = Sandbox::new();
    let tar = raw_tar()
        .pax(&[
            ("SCHILY.xattr.user.ok", b"1"),
            ("SCHILY.xattr.trusted.no", b"2"),
            (
                "SCHILY.xattr.security.selinux",
                b"system_u:object_r:bin_t:s0",
            ),
        ])
        .file("f", b"")
        .finish();
    sb.apply(&tar).unwrap();
    let names: Vec<_> = xattr::list(sb.layer().join("f")).unwrap().collect();
    assert_eq!(names, [OsStr::new("user.ok")]);
}

#[test]
fn whiteouts_and_opaque_markers_become_overlay_format() {
    let sb = Sandbox::new();
    let tar = raw_tar()
        .file(".wh.gone", b"")
        .file("o/.wh..wh..opq", b"")
        .file("o/keep", b"k")
        .file("p/.wh.old", b"")
        .file(".wh..wh.plnk", b"")
        .finish();
    let report = sb.apply(&tar).unwrap();
    assert_eq!(report.entries, 5);
    assert_eq!(sb.list(), ["gone", "o", "o/keep", "p", "p/old"]);
    for wh in ["gone", "p/old"] {
        let m = fs::symlink_metadata(sb.layer().join(wh)).unwrap();
        assert_eq!(m.mode() & libc::S_IFMT, libc::S_IFCHR);
        assert_eq!(m.rdev(), 0);
        assert_eq!(m.mtime(), T);
    }
    assert_eq!(
        xattr::get(sb.layer().join("o"), "user.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );
    let names: Vec<String> = read_tar(&tar_of(&sb.layer()))
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(
        names,
        [
            ".wh.gone",
            "o/",
            "o/.wh..wh..opq",
            "o/keep",
            "p/",
            "p/.wh.old"
        ]
    );
}

#[test]
fn duplicates_replace_except_dir_over_dir() {
    let sb = Sandbox::new();
    let tar = raw_tar()
        .file("f", b"first")
        .file("f", b"second")
        .file("a", b"file")
        .dir("a/", 0o700)
        .file("a/x", b"x")
        .dir("d/", 0o700)
        .file("d/keep", b"k")
        .dir("d/", 0o751)
        .dir("gone/", 0o755)
        .file("gone/inner", b"i")
        .link("gone", EntryType::Symlink, "f")
        .finish();
    sb.apply(&tar).unwrap();
    assert_eq!(fs::read(sb.layer().join("f")).unwrap(), b"second");
    assert!(sb.layer().join("a").is_dir());
    assert_eq!(fs::read(sb.layer().join("d/keep")).unwrap(), b"k");
    let d = fs::metadata(sb.layer().join("d")).unwrap();
    assert_eq!(d.mode() & 0o7777, 0o751);
    assert_eq!(d.mtime(), T);
    assert!(fs::symlink_metadata(sb.layer().join("gone"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(sb.list(), ["a", "a/x", "d", "d/keep", "f", "gone"]);
}

#[test]
fn owners_modes_devices_and_implicit_parents() {
    let sb = Sandbox::new();
    let mut su = raw_header(b"p/q/su", EntryType::Regular, 2);
    su.set_uid(1000);
    su.set_gid(1001);
    su.set_mode(0o6755);
    let mut dev = raw_header(b"dev/null", EntryType::Char, 0);
    dev.set_device_major(1).unwrap();
    dev.set_device_minor(3).unwrap();
    dev.set_mode(0o666);
    let mut fifo = raw_header(b"fifo", EntryType::Fifo, 0);
    fifo.set_mode(0o600);
    let tar = raw_tar()
        .raw(su, b"su")
        .raw(dev, b"")
        .raw(fifo, b"")
        .finish();
    let report = sb.apply(&tar).unwrap();
    assert!(
        report.skipped_devices.is_empty(),
        "running as root, mknod works"
    );
    let m = fs::metadata(sb.layer().join("p/q/su")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 1001, 0o6755));
    let p = fs::metadata(sb.layer().join("p")).unwrap();
    assert_eq!(p.mode() & 0o7777, 0o755);
    let n = fs::symlink_metadata(sb.layer().join("dev/null")).unwrap();
    assert_eq!(n.rdev(), rfs::makedev(1, 3));
    assert_eq!(n.mode() & 0o7777, 0o666);
    let f = fs::symlink_metadata(sb.layer().join("fifo")).unwrap();
    assert_eq!(f.mode() & libc::S_IFMT, libc::S_IFIFO);
}

#[test]
fn unmappable_ids_give_an_actionable_error() {
    let sb = Sandbox::new();
    let mut h = raw_header(b"f", EntryType::Regular, 0);
    h.set_uid(u64::from(u32::MAX));
    let err = sb.apply(&raw_tar().raw(h, b"").finish()).unwrap_err();
    assert!(
        matches!(
            err,
            SnapshotError::Extract {
                source: boundary::ExtractError::UnmappedId {
                    uid: 4294967295,
                    ..
                },
                ..
            }
        ),
        "{err:?}"
    );
    let msg = crate::error_chain(&err);
    assert!(
        msg.contains("/etc/subuid") && msg.contains("/etc/subgid"),
        "{msg}"
    );
}

#[test]
fn apply_wants_an_empty_dir_and_rejects_bad_types() {
    let sb = Sandbox::new();
    fs::write(sb.layer().join("junk"), b"").unwrap();
    let err = sb.apply(&raw_tar().file("f", b"").finish()).unwrap_err();
    assert!(matches!(
        err,
        SnapshotError::Extract {
            source: boundary::ExtractError::NotEmpty,
            ..
        }
    ));

    let sb = Sandbox::new();
    let h = raw_header(b"vol", EntryType::new(b'V'), 0);
    let err = sb.apply(&raw_tar().raw(h, b"").finish()).unwrap_err();
    assert!(
        matches!(
            err,
            SnapshotError::Extract {
                source: boundary::ExtractError::UnsupportedEntry { .. },
                ..
            }
        ),
        "{err:?}"
    );

    // a truncated tar is an error, not a silent partial layer
    let tar = raw_tar().file("big", &[7u8; 5000]).finish();
    for cut in [2048, 512 + 5000] {
        let sb = Sandbox::new();
        let err = sb.apply(&tar[..cut]).unwrap_err();
        assert!(
            matches!(
                err,
                SnapshotError::Extract {
                    source: boundary::ExtractError::Read(_)
                        | boundary::ExtractError::Truncated { .. },
                    ..
                }
            ),
            "{err:?}"
        );
    }
    // absurd sizes in a header: an error, nothing buffered
    let sb = Sandbox::new();
    let h = raw_header(b"huge", EntryType::Regular, 0o77777777777);
    let mut bytes = h.as_bytes().to_vec();
    {
        let mut h = Header::from_byte_slice(&bytes).clone();
        h.set_cksum();
        bytes = h.as_bytes().to_vec();
    }
    bytes.extend_from_slice(&[1u8; 4096]);
    let err = sb.apply(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            SnapshotError::Extract {
                source: boundary::ExtractError::Read(_) | boundary::ExtractError::Truncated { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn ustar_split_and_pax_records() {
    use super::layer_tar::tests_support::{pax_record_for_test, split_ustar_for_test};
    assert_eq!(
        split_ustar_for_test(b"short"),
        Some((&b""[..], &b"short"[..]))
    );
    let name = format!("{}/{}", "a".repeat(150), "b".repeat(100));
    let (p, n) = split_ustar_for_test(name.as_bytes()).unwrap();
    assert_eq!((p.len(), n.len()), (150, 100));
    assert_eq!(split_ustar_for_test("c".repeat(101).as_bytes()), None);
    let dir = format!("{}/{}/", "a".repeat(20), "b".repeat(99));
    let (p, n) = split_ustar_for_test(dir.as_bytes()).unwrap();
    assert_eq!((p.len(), n.len()), (20, 100));
    for vlen in 0..1100 {
        let v = vec![b'v'; vlen];
        let rec = pax_record_for_test(b"key", &v);
        let (len, _) = std::str::from_utf8(&rec).unwrap().split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), rec.len());
    }
}
