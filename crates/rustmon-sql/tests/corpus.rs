//! Fingerprinting on real-world statements, per dialect.

use rustmon_sql::{Dialect, Fingerprint, fingerprint};

#[track_caller]
fn check(dialect: Dialect, sql: &str, want: &str, op: Option<&str>, table: Option<&str>) {
    let fp = Fingerprint::new(sql, dialect);
    assert_eq!(fp.text(), want, "fingerprint of {sql:?}");
    assert_eq!(fp.operation(), op, "operation of {sql:?}");
    assert_eq!(fp.collection(), table, "collection of {sql:?}");
    assert_eq!(
        fingerprint(want, dialect),
        want,
        "not idempotent on {want:?}"
    );
}

#[test]
fn postgres_corpus() {
    use Dialect::Postgres as P;
    check(P, "SELECT 1", "SELECT ?", Some("SELECT"), None);
    check(
        P,
        "SELECT id, email FROM users WHERE email = 'bob@example.com' AND deleted_at IS NULL LIMIT 1;",
        "SELECT id, email FROM users WHERE email = ? AND deleted_at IS NULL LIMIT ?",
        Some("SELECT"),
        Some("users"),
    );
    check(
        P,
        "select * from public.orders o join order_items i on i.order_id = o.id where o.id = $1",
        "select * from public.orders o join order_items i on i.order_id = o.id where o.id = ?",
        Some("SELECT"),
        Some("public.orders"),
    );
    check(
        P,
        "SELECT * FROM \"Accounts\" WHERE id IN (1, 2, 3, 4) AND balance > -10.5e3",
        "SELECT * FROM \"Accounts\" WHERE id IN (?) AND balance > ?",
        Some("SELECT"),
        Some("Accounts"),
    );
    check(
        P,
        "INSERT INTO events (id, payload, at) VALUES ($1, $2, now()), ($3, $4, now()) RETURNING id",
        "INSERT INTO events (id, payload, at) VALUES (?) RETURNING id",
        Some("INSERT"),
        Some("events"),
    );
    check(
        P,
        "UPDATE accounts SET balance = balance - 100.00, note = E'it\\'s paid' WHERE id = 42",
        "UPDATE accounts SET balance = balance - ?, note = ? WHERE id = ?",
        Some("UPDATE"),
        Some("accounts"),
    );
    check(
        P,
        "DELETE FROM sessions WHERE expires_at < now() - interval '1 day'",
        "DELETE FROM sessions WHERE expires_at < now() - interval ?",
        Some("DELETE"),
        Some("sessions"),
    );
    check(
        P,
        "SELECT $fn$ body with 'quotes' $fn$, $$ x $$ FROM t",
        "SELECT ?, ? FROM t",
        Some("SELECT"),
        Some("t"),
    );
    check(
        P,
        "/* request_id=abc */ SELECT a::text, b->>'k' FROM docs WHERE tags @> ARRAY['x','y'] -- hi\n AND ok = true",
        "SELECT a::text, b->>? FROM docs WHERE tags @> ARRAY[?] AND ok = ?",
        Some("SELECT"),
        Some("docs"),
    );
    check(
        P,
        "WITH recent AS (SELECT * FROM orders WHERE created > '2024-01-01') SELECT count(*) FROM recent",
        "WITH recent AS (SELECT * FROM orders WHERE created > ?) SELECT count(*) FROM recent",
        Some("SELECT"),
        Some("recent"),
    );
    check(
        P,
        "SELECT * FROM t WHERE id = ANY($1) AND x IN (SELECT y FROM u WHERE z = 'q')",
        "SELECT * FROM t WHERE id = ANY(?) AND x IN (SELECT y FROM u WHERE z = ?)",
        Some("SELECT"),
        Some("t"),
    );
    check(
        P,
        "SELECT x'1F', B'0101', N'nat', U&'d\\0061t' FROM \"my schema\".\"my table\"",
        "SELECT ?, ?, ?, ? FROM \"my schema\".\"my table\"",
        Some("SELECT"),
        Some("my schema.my table"),
    );
    check(
        P,
        "CREATE TABLE IF NOT EXISTS audit_log (id bigserial PRIMARY KEY, msg text DEFAULT 'n/a')",
        "CREATE TABLE IF NOT EXISTS audit_log (id bigserial PRIMARY KEY, msg text DEFAULT ?)",
        Some("CREATE"),
        Some("audit_log"),
    );
    check(
        P,
        "CREATE UNIQUE INDEX CONCURRENTLY users_email ON users (lower(email))",
        "CREATE UNIQUE INDEX CONCURRENTLY users_email ON users (lower(email))",
        Some("CREATE"),
        Some("users"),
    );
    check(
        P,
        "DROP TABLE foo",
        "DROP TABLE foo",
        Some("DROP"),
        Some("foo"),
    );
    check(P, "BEGIN", "BEGIN", Some("BEGIN"), None);
    check(
        P,
        "INSERT INTO kv (k, v) VALUES ('a', 1) ON CONFLICT (k) DO UPDATE SET v = excluded.v + 1",
        "INSERT INTO kv (k, v) VALUES (?) ON CONFLICT (k) DO UPDATE SET v = excluded.v + ?",
        Some("INSERT"),
        Some("kv"),
    );
    check(
        P,
        "SELECT /* a /* nested */ comment */ 1",
        "SELECT ?",
        Some("SELECT"),
        None,
    );
    check(
        P,
        "SELECT * FROM (SELECT 1) AS sub",
        "SELECT * FROM (SELECT ?) AS sub",
        Some("SELECT"),
        None,
    );
    check(
        P,
        "TRUNCATE TABLE t1",
        "TRUNCATE TABLE t1",
        Some("TRUNCATE"),
        Some("t1"),
    );
    check(
        P,
        "SELECT   a,b ,c\n\tFROM   t2\r\nWHERE a=1",
        "SELECT a, b, c FROM t2 WHERE a=?",
        Some("SELECT"),
        Some("t2"),
    );
}

#[test]
fn mysql_corpus() {
    use Dialect::MySql as M;
    check(
        M,
        "SELECT * FROM `users` WHERE `name` = \"O\\\"Brien\" AND pass = 'x\\'y' # trailing",
        "SELECT * FROM `users` WHERE `name` = ? AND pass = ?",
        Some("SELECT"),
        Some("users"),
    );
    check(
        M,
        "INSERT IGNORE INTO `shop`.`orders` (a, b) VALUES (1, 'x'),(2,'y'),(3,'z')",
        "INSERT IGNORE INTO `shop`.`orders` (a, b) VALUES (?)",
        Some("INSERT"),
        Some("shop.orders"),
    );
    check(
        M,
        "INSERT INTO t (a) VALUES (?) ON DUPLICATE KEY UPDATE a = VALUES(a)",
        "INSERT INTO t (a) VALUES (?) ON DUPLICATE KEY UPDATE a = VALUES(a)",
        Some("INSERT"),
        Some("t"),
    );
    check(
        M,
        "REPLACE INTO cache (k, v) VALUES (0xDEADBEEF, _utf8mb4'v')",
        "REPLACE INTO cache (k, v) VALUES (?)",
        Some("REPLACE"),
        Some("cache"),
    );
    check(
        M,
        "UPDATE LOW_PRIORITY items SET qty = qty - 1 WHERE sku IN ('a', 'b')",
        "UPDATE LOW_PRIORITY items SET qty = qty - ? WHERE sku IN (?)",
        Some("UPDATE"),
        Some("items"),
    );
    check(
        M,
        "SELECT /*! SQL_NO_CACHE */ id FROM t WHERE d > '2020-01-01' -- c\n LIMIT 10, 20",
        "SELECT id FROM t WHERE d > ? LIMIT ?, ?",
        Some("SELECT"),
        Some("t"),
    );
    check(
        M,
        "DELETE FROM sessions WHERE user_id = 5",
        "DELETE FROM sessions WHERE user_id = ?",
        Some("DELETE"),
        Some("sessions"),
    );
    check(M, "SHOW TABLES", "SHOW TABLES", Some("SHOW"), None);
    check(
        M,
        "SELECT @rownum := @rownum + 1, TRUE, false FROM t1",
        "SELECT @rownum := @rownum + ?, ?, ? FROM t1",
        Some("SELECT"),
        Some("t1"),
    );
}

#[test]
fn sqlite_corpus() {
    use Dialect::Sqlite as S;
    check(
        S,
        "SELECT * FROM [order details] WHERE id = ?1 AND name = :name AND x = @x AND y = $y",
        "SELECT * FROM [order details] WHERE id = ? AND name = ? AND x = ? AND y = ?",
        Some("SELECT"),
        Some("order details"),
    );
    check(
        S,
        "INSERT OR REPLACE INTO \"kv\" (k, v) VALUES ('a', X'00ff')",
        "INSERT OR REPLACE INTO \"kv\" (k, v) VALUES (?)",
        Some("INSERT"),
        Some("kv"),
    );
    check(
        S,
        "PRAGMA journal_mode = WAL",
        "PRAGMA journal_mode = WAL",
        Some("PRAGMA"),
        None,
    );
    check(
        S,
        "SELECT `a` FROM t WHERE b = 'it''s' AND c = 1.5",
        "SELECT `a` FROM t WHERE b = ? AND c = ?",
        Some("SELECT"),
        Some("t"),
    );
    check(
        S,
        "UPDATE OR IGNORE t SET a = 1 WHERE rowid = 7",
        "UPDATE OR IGNORE t SET a = ? WHERE rowid = ?",
        Some("UPDATE"),
        Some("t"),
    );
}

#[test]
fn strange_input_does_not_panic() {
    for d in [
        Dialect::Postgres,
        Dialect::MySql,
        Dialect::Sqlite,
        Dialect::Generic,
    ] {
        for s in [
            "",
            " ",
            ";",
            "'",
            "\"",
            "`",
            "[",
            "$",
            "$$",
            "$a",
            "$a$",
            "/*",
            "--",
            "#",
            "((((",
            "))))",
            "VALUES",
            "VALUES (",
            "IN (1,",
            "é'ü'",
            "SELECT 'ü",
            "x = -",
            "0x",
            "1e",
            "E'\\",
            "U&",
            "?",
            ":",
            "::",
            "@",
            "[[",
            "]]",
            "SELECT (((((((((((((((((((((((((((((((((((((1)))))))))))))))))))))))))))))))))))))",
        ] {
            let once = fingerprint(s, d);
            assert_eq!(fingerprint(&once, d), once, "{d:?} {s:?}");
            let _ = Fingerprint::new(s, d);
        }
    }
}

#[test]
fn deep_nesting_collapses_consistently() {
    let fp = fingerprint("SELECT ((1, 2), (3, 4))", Dialect::Postgres);
    assert_eq!(fp, "SELECT (?)");
    let fp = fingerprint("SELECT f(1, g(2))", Dialect::Postgres);
    assert_eq!(fp, "SELECT f(?, g(?))");
}

#[test]
fn only_integers_start_identifiers() {
    // `1st_column` is a MySQL identifier; `0.` and `1e5` are numbers even when a word follows.
    assert_eq!(fingerprint("0.$0", Dialect::Postgres), "? ?");
    assert_eq!(fingerprint("SELECT 1.5x", Dialect::Sqlite), "SELECT ? x");
    assert_eq!(
        fingerprint("SELECT 1st_column", Dialect::MySql),
        "SELECT 1st_column"
    );
}
