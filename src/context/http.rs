//! Downloads for `ADD https://...` and tarball-URL contexts: streamed to a file, with the
//! name and modification time the server gives, and an optional sha256 check.

// Paths here are a temp file this module creates for the download: the boundary rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::select::ContextError;

/// A downloaded file.
#[derive(Debug, Clone)]
pub struct Download {
    pub path: PathBuf,
    /// The file name from the URL's last path segment (`__unnamed__` when there is none).
    pub name: String,
    /// `Last-Modified`, as seconds since the epoch.
    pub modified: Option<i64>,
    /// sha256 of the content, `sha256:HEX`.
    pub digest: String,
}

fn remote(what: &str, detail: impl Into<String>) -> ContextError {
    ContextError::Remote {
        what: what.to_string(),
        detail: detail.into(),
    }
}

/// The name BuildKit gives a URL's file: its path's last segment.
pub fn file_name(url: &str) -> String {
    let without_query = url.split(['?', '#']).next().unwrap_or(url);
    let path = without_query
        .split_once("://")
        .map_or(without_query, |(_, rest)| rest);
    let path = path.split_once('/').map_or("", |(_, p)| p);
    match path.rsplit('/').next() {
        Some(last) if !last.is_empty() && last != "." && last != ".." => last.to_string(),
        _ => "__unnamed__".to_string(),
    }
}

/// Downloads `url` into `dir`; `checksum` (`sha256:HEX`) must match when given.
pub fn download(url: &str, dir: &Path, checksum: Option<&str>) -> Result<Download, ContextError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(120)))
        .max_redirects(10)
        .user_agent(concat!("rbuild/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut response = agent
        .get(url)
        .call()
        .map_err(|e| remote(&format!("GET {url}"), e.to_string()))?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(remote(&format!("GET {url}"), format!("HTTP {status}")));
    }
    let modified = response
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date);
    let name = file_name(url);
    let path = dir.join(&name);
    let mut file = std::fs::File::create(&path).map_err(|e| ContextError::Io {
        path: path.clone(),
        source: e,
    })?;
    let mut hasher = Sha256::new();
    let mut reader = response.body_mut().as_reader();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = std::io::Read::read(&mut reader, &mut buf)
            .map_err(|e| remote(&format!("GET {url}"), e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(|e| ContextError::Io {
            path: path.clone(),
            source: e,
        })?;
    }
    let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    if let Some(expected) = checksum {
        if expected != digest {
            return Err(remote(
                &format!("checksum of {url}"),
                format!("expected {expected}, got {digest}"),
            ));
        }
    }
    Ok(Download {
        path,
        name,
        modified,
        digest,
    })
}

/// `Wed, 21 Oct 2015 07:28:00 GMT` (RFC 7231's preferred form) -> seconds since the epoch.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, zone] = parts.as_slice() else {
        return None;
    };
    if *zone != "GMT" {
        return None;
    }
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as i64
        + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dates() {
        assert_eq!(
            file_name("https://example.com/path/file.tar.gz?x=1"),
            "file.tar.gz"
        );
        assert_eq!(file_name("https://example.com/"), "__unnamed__");
        assert_eq!(file_name("https://example.com"), "__unnamed__");
        assert_eq!(file_name("http://127.0.0.1:8080/a/b"), "b");
        assert_eq!(
            parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(1_445_412_480)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
