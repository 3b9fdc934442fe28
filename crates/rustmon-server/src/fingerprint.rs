//! SQL statement fingerprints: literals replaced by `?`, whitespace collapsed, `IN (…)` lists folded.

/// The fingerprint of an SQL statement.
///
/// String and numeric literals become `?`, runs of whitespace one space, and lists of
/// placeholders `(?, ?, ?)` become `(?)`, so statements that differ only in their literals
/// share one fingerprint.
///
/// # Examples
/// ```
/// use rustmon_server::fingerprint::fingerprint;
/// assert_eq!(
///     fingerprint("SELECT * FROM t WHERE id = 42 AND name = 'x' AND k IN (1, 2,3)"),
///     "SELECT * FROM t WHERE id = ? AND name = ? AND k IN (?)"
/// );
/// ```
pub fn fingerprint(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let b = sql.as_bytes();
    let mut i = 0;
    let mut last_space = false;
    while i < b.len() {
        let c = b[i];
        if c == b'\'' {
            // string literal with '' escapes
            i += 1;
            while i < b.len() {
                if b[i] == b'\'' {
                    if i + 1 < b.len() && b[i + 1] == b'\'' {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            out.push('?');
            last_space = false;
            continue;
        }
        if c.is_ascii_digit() {
            let prev = out.as_bytes().last().copied();
            let ident = prev.is_some_and(|p| p.is_ascii_alphanumeric() || p == b'_' || p == b'$');
            if !ident {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                out.push('?');
                last_space = false;
                continue;
            }
        }
        if c.is_ascii_whitespace() {
            if !last_space && !out.is_empty() {
                out.push(' ');
            }
            last_space = true;
            i += 1;
            continue;
        }
        last_space = false;
        // push the whole UTF-8 character
        let ch_len = utf8_len(c);
        out.push_str(&sql[i..(i + ch_len).min(sql.len())]);
        i += ch_len;
    }
    let trimmed = out.trim_end().to_string();
    fold_lists(&trimmed)
}

fn utf8_len(c: u8) -> usize {
    match c {
        0..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

fn fold_lists(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find("(?") {
        out.push_str(&rest[..p]);
        let tail = &rest[p + 1..];
        // consume "?", then (", ?" | ",?")* then ")"
        let mut j = 1;
        let tb = tail.as_bytes();
        loop {
            let mut k = j;
            while k < tb.len() && tb[k] == b' ' {
                k += 1;
            }
            if k < tb.len() && tb[k] == b',' {
                k += 1;
                while k < tb.len() && tb[k] == b' ' {
                    k += 1;
                }
                if k < tb.len() && tb[k] == b'?' {
                    j = k + 1;
                    continue;
                }
            }
            break;
        }
        if j < tb.len() && tb[j] == b')' {
            out.push_str("(?)");
            rest = &tail[j + 1..];
        } else {
            out.push_str("(?");
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn literals_and_lists() {
        assert_eq!(
            fingerprint("select a1 from t2 where x='it''s'  and y = -3.5"),
            "select a1 from t2 where x=? and y = -?"
        );
        assert_eq!(
            fingerprint("INSERT INTO t VALUES (1, 'a', 2)"),
            "INSERT INTO t VALUES (?)"
        );
        assert_eq!(fingerprint("SELECT $1, é"), "SELECT $1, é");
    }
}
