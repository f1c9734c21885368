//! Asking the user for a password on the controlling terminal, without echo.

use std::io::{BufRead as _, Write as _};

use nix::sys::termios::{self, LocalFlags, SetArg};

/// Reads one line from /dev/tty with echo off, after printing `prompt` there. Fails when
/// there is no terminal (CI), so the caller can say where else the password can come from.
pub fn read_password(prompt: &str) -> std::io::Result<String> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let saved = termios::tcgetattr(&tty)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    termios::tcsetattr(&tty, SetArg::TCSANOW, &quiet)?;
    let mut line = String::new();
    let read = (&tty)
        .write_all(prompt.as_bytes())
        .and_then(|()| std::io::BufReader::new(&tty).read_line(&mut line));
    // Echo comes back even when reading failed.
    termios::tcsetattr(&tty, SetArg::TCSANOW, &saved)?;
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
