//! Blanks passwords given on the command line (`--creds USER:PASS`, `login --password P`)
//! in this process's own argument memory, which is what `/proc/PID/cmdline` and `ps` show
//! to every user of the machine. clap has its copy already; the password stays visible only
//! for the instant between exec and the start of `main`.

use std::ffi::{c_char, c_int, CStr};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

static ARGC: AtomicUsize = AtomicUsize::new(0);
static ARGV: AtomicPtr<*mut c_char> = AtomicPtr::new(std::ptr::null_mut());

/// glibc calls the functions of `.init_array` with `(argc, argv, envp)` (the Rust standard
/// library reads its arguments the same way): the only portable way to reach the original
/// argument memory rather than a copy of it.
extern "C" fn capture(argc: c_int, argv: *mut *mut c_char, _envp: *mut *mut c_char) {
    ARGC.store(usize::try_from(argc).unwrap_or(0), Ordering::Relaxed);
    ARGV.store(argv, Ordering::Relaxed);
}

#[used]
#[link_section = ".init_array.00099"]
static CAPTURE: extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) = capture;

/// Where the secret starts in `arg` (after `previous`), if `arg` holds one.
fn secret_start(previous: Option<&[u8]>, arg: &[u8], login: bool) -> Option<usize> {
    let after_colon = |value: &[u8], offset: usize| {
        value
            .iter()
            .position(|&b| b == b':')
            .map(|colon| offset + colon + 1)
    };
    if let Some(value) = arg.strip_prefix(b"--creds=") {
        return after_colon(value, b"--creds=".len());
    }
    if previous == Some(b"--creds".as_slice()) {
        return after_colon(arg, 0);
    }
    if login {
        if arg.starts_with(b"--password=") {
            return Some(b"--password=".len());
        }
        if matches!(previous, Some(b"--password") | Some(b"-p")) {
            return Some(0);
        }
    }
    None
}

/// Overwrites every password in the argument memory with `*`; returns how many were hidden.
/// Call first thing in `main`, before any thread exists.
pub fn hide_passwords() -> usize {
    let argc = ARGC.load(Ordering::Relaxed);
    let argv = ARGV.load(Ordering::Relaxed);
    if argv.is_null() {
        return 0;
    }
    // SAFETY: argv holds argc pointers to NUL-terminated strings that live for the whole
    // process (the kernel's argument area); nothing else reads or writes them concurrently.
    let args: Vec<*mut c_char> = (0..argc).map(|i| unsafe { *argv.add(i) }).collect();
    let bytes = |p: *mut c_char| -> &'static [u8] {
        if p.is_null() {
            &[]
        } else {
            // SAFETY: as above; the slice is read before any write to the same string.
            unsafe { CStr::from_ptr(p) }.to_bytes()
        }
    };
    let login = args.iter().skip(1).any(|&p| bytes(p) == b"login");
    let mut hidden = 0;
    for i in 1..args.len() {
        let previous = bytes(args[i - 1]);
        let arg = bytes(args[i]);
        if previous == b"--" {
            break;
        }
        let Some(start) = secret_start(Some(previous), arg, login) else {
            continue;
        };
        let length = arg.len();
        for offset in start..length {
            // SAFETY: offset < the string's length: inside the argument area.
            unsafe { *args[i].add(offset) = b'*' as c_char };
        }
        hidden += usize::from(start < length);
    }
    hidden
}

#[cfg(test)]
mod tests {
    use super::secret_start;

    #[test]
    fn secrets_are_found_in_every_spelling() {
        assert_eq!(secret_start(None, b"--creds=me:pw", false), Some(11));
        assert_eq!(secret_start(None, b"--creds=me", false), None);
        assert_eq!(secret_start(Some(b"--creds"), b"me:pw", false), Some(3));
        assert_eq!(secret_start(Some(b"--creds"), b"me", false), None);
        assert_eq!(secret_start(Some(b"-p"), b"pw", true), Some(0));
        assert_eq!(secret_start(Some(b"--password"), b"pw", true), Some(0));
        assert_eq!(secret_start(None, b"--password=pw", true), Some(11));
        // Not login: -p is no password flag there.
        assert_eq!(secret_start(Some(b"-p"), b"x", false), None);
        assert_eq!(secret_start(Some(b"-t"), b"app:1", false), None);
    }
}
