//! Properties: no literal survives obfuscation; fingerprinting is idempotent.

use proptest::prelude::*;
use rustmon_sql::{Dialect, fingerprint};

fn dialect() -> impl Strategy<Value = Dialect> {
    prop_oneof![
        Just(Dialect::Postgres),
        Just(Dialect::MySql),
        Just(Dialect::Sqlite),
        Just(Dialect::Generic),
    ]
}

/// A literal with a recognisable secret inside, in a form the dialect reads as a literal.
fn literal(secret: String, n: u64, d: Dialect) -> Vec<String> {
    let quoted = if d == Dialect::MySql {
        secret.replace('\\', "\\\\").replace('\'', "''")
    } else {
        secret.replace('\'', "''")
    };
    let mut v = vec![
        format!("'{quoted}'"),
        format!("N'{quoted}'"),
        format!("{n}"),
        format!("{n}.{n}"),
        format!("{n}e5"),
        format!("0x{n:X}"),
        format!("X'{n:X}'"),
    ];
    match d {
        Dialect::Postgres | Dialect::Generic => {
            v.push(format!("$q${secret}$q$"));
            v.push(format!(
                "E'{}'",
                secret.replace('\\', "\\\\").replace('\'', "\\'")
            ));
        }
        Dialect::MySql => {
            let esc = secret.replace('\\', "\\\\").replace('"', "\\\"");
            v.push(format!("\"{esc}\""));
            v.push(format!(
                "'{}'",
                secret.replace('\\', "\\\\").replace('\'', "\\'")
            ));
        }
        Dialect::Sqlite => {}
    }
    v
}

fn secret() -> impl Strategy<Value = String> {
    // Marked so that it cannot appear in the statement's own words.
    "[a-zA-Z0-9 '\"\\\\%_,()-]{0,12}".prop_map(|s| format!("ZQX{s}QXZ"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_literal_survives(
        d in dialect(),
        s in secret(),
        n in 1_000_000u64..u64::MAX,
        pick in 0usize..16,
        shape in 0usize..5,
    ) {
        let lits = literal(s.clone(), n, d);
        let lit = &lits[pick % lits.len()];
        let sql = match shape {
            0 => format!("SELECT * FROM t WHERE a = {lit}"),
            1 => format!("INSERT INTO t (a, b) VALUES ({lit}, {lit}), ({lit}, 1)"),
            2 => format!("UPDATE t SET a = {lit} /* {n} */ WHERE b IN ({lit}, {lit})"),
            3 => format!("SELECT f({lit}) -- {lit}\nFROM t"),
            _ => format!("DELETE FROM t WHERE x = -{n} OR y = {lit}"),
        };
        let out = fingerprint(&sql, d);
        prop_assert!(!out.contains("ZQX") && !out.contains("QXZ"), "{sql:?} -> {out:?}");
        prop_assert!(!out.contains(&n.to_string()), "{sql:?} -> {out:?}");
        prop_assert!(!out.contains(&format!("{n:X}")), "{sql:?} -> {out:?}");
    }

    #[test]
    fn idempotent_on_arbitrary_text(d in dialect(), sql in "[ -~\\n\\té]{0,80}") {
        let once = fingerprint(&sql, d);
        prop_assert_eq!(fingerprint(&once, d), once.clone(), "input {:?}", sql);
    }

    #[test]
    fn idempotent_on_sqlish_text(
        d in dialect(),
        parts in proptest::collection::vec(prop_oneof![
            Just("SELECT"), Just("VALUES"), Just("IN"), Just("("), Just(")"), Just(","),
            Just("'x'"), Just("1"), Just("-2"), Just("?"), Just("$1"), Just("a"), Just("t.b"),
            Just("["), Just("]"), Just("--c\n"), Just("/*c*/"), Just(" "), Just("="), Just(";"),
            Just("\"q\""), Just("`b`"), Just("TRUE"), Just(":n"), Just("::"),
        ], 0..30),
    ) {
        let sql: String = parts.concat();
        let once = fingerprint(&sql, d);
        prop_assert_eq!(fingerprint(&once, d), once.clone(), "input {:?}", sql);
    }
}
