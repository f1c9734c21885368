//! Lines for standard output. `rbuild history X | head -1` closes the pipe early: the rest of
//! the listing is not wanted, so the command ends quietly with the status a process killed by
//! SIGPIPE has (as `ls` does), instead of the panic of `println!`.

use std::io::Write;

/// Exit status of a process ended by SIGPIPE, as a shell reports it.
const BROKEN_PIPE_STATUS: i32 = 128 + libc::SIGPIPE;

/// Writes one line to standard output; see the module doc for a closed pipe.
pub fn line(text: std::fmt::Arguments) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(text)
        .and_then(|()| stdout.write_all(b"\n"));
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            std::process::exit(BROKEN_PIPE_STATUS)
        }
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            std::process::exit(1)
        }
    }
}

/// `println!` for command output: a closed pipe ends the command quietly.
macro_rules! outln {
    () => {
        $crate::cli::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}
