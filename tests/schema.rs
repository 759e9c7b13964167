//! `src/db/schema.rs` is generated, not written: it must be byte for byte what
//! `diesel print-schema` writes, with the repository's `diesel.toml`, for a database that
//! the embedded migrations have just built. A migration that changes a table without the
//! schema being regenerated (or a hand edit of the file) fails here with the difference
//! and the command that regenerates it.

mod common;

use std::path::{Path, PathBuf};

use common::TestDb;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SCHEMA: &str = "src/db/schema.rs";
const CONFIG: &str = "diesel.toml";
/// What `scripts/test` installs; the README says the same.
const INSTALL: &str = "cargo install diesel_cli --version 2.3.14 --no-default-features \
                       --features postgres --locked   (needs libpq-dev: apt-get install libpq-dev)";

#[tokio::test(flavor = "multi_thread")]
async fn schema_rs_is_what_print_schema_writes_for_a_fresh_database() {
    let root = Path::new(ROOT);
    // Without its config file diesel silently prints with its defaults: say so instead.
    assert!(
        root.join(CONFIG).is_file(),
        "{CONFIG} is missing: print-schema would run with its defaults"
    );
    let diesel = find_command("diesel").unwrap_or_else(|| {
        panic!(
            "the `diesel` command (diesel_cli) is not installed: it was looked for on PATH, in \
             $CARGO_HOME/bin and in $HOME/.cargo/bin. Install it with\n    {INSTALL}"
        )
    });

    // print-schema pipes its output through rustfmt and, without it, prints it unformatted.
    assert!(
        find_command("rustfmt").is_some(),
        "rustfmt is not installed (looked for as diesel was): diesel print-schema formats \
         its output with it (rustup component add rustfmt)"
    );

    // The same migrations the gateway embeds and runs, on a database of this test's own.
    let db = TestDb::new(0).await;

    // Run where a developer regenerates the file: rustfmt, which print-schema pipes its
    // output through, reads its configuration from the working directory.
    let out = tokio::process::Command::new(&diesel)
        .current_dir(root)
        .args([
            "print-schema",
            "--database-url",
            db.url.as_str(),
            "--config-file",
        ])
        .arg(root.join(CONFIG))
        // The directories searched here, so that diesel finds the same rustfmt.
        .env("PATH", std::env::join_paths(search_dirs()).expect("PATH"))
        .env_remove("DATABASE_URL")
        .env_remove("DIESEL_CONFIG_FILE")
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {}: {e}", diesel.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "`{} print-schema` failed ({}):\n{stderr}\n(a patch_file that no longer applies also \
         fails here: see diesel.toml)",
        diesel.display(),
        out.status
    );
    let generated = String::from_utf8(out.stdout).expect("print-schema writes UTF-8");
    let committed = std::fs::read_to_string(root.join(SCHEMA))
        .unwrap_or_else(|e| panic!("reading {SCHEMA}: {e}"));

    if generated != committed {
        // Kept for a look or a copy: `diff -u src/db/schema.rs <this file>`.
        let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("schema.generated.rs");
        let _ = std::fs::write(&kept, &generated);
        panic!(
            "{SCHEMA} is not what `diesel print-schema` writes for the migrated database \
             (- {SCHEMA}, + print-schema):\n{}\n\
             print-schema's whole output: {}\n{}\
             Regenerate it (this test's database stays for half an hour; any freshly migrated \
             one will do):\n    diesel print-schema --database-url {} --config-file {CONFIG} \
             > {SCHEMA}\n(from {ROOT}; print-schema formats with rustfmt, which must be on \
             PATH: rustup component add rustfmt)",
            first_difference(&committed, &generated),
            kept.display(),
            if stderr.trim().is_empty() {
                String::new()
            } else {
                format!("print-schema said:\n{stderr}\n")
            },
            db.url,
        );
    }
}

/// PATH, then where `cargo install` and rustup put their commands.
fn search_dirs() -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(std::env::var_os("CARGO_HOME").map(|h| PathBuf::from(h).join("bin")))
        .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin")))
        .collect()
}

fn find_command(name: &str) -> Option<PathBuf> {
    search_dirs()
        .into_iter()
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The first place where the two texts differ, as a unified diff hunk with three lines
/// of context: lines only in `old` start with `-`, lines only in `new` with `+`.
fn first_difference(old: &str, new: &str) -> String {
    const CONTEXT: usize = 3;
    const MAX_LINES: usize = 30;
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    let p = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let (ra, rb) = (a.len() - p, b.len() - p);
    // The texts agree again after skipping `i` lines of `old` and `j` of `new` when the
    // next CONTEXT lines (or all that is left of both) are equal; take the nearest such.
    let agree = |i: usize, j: usize| {
        let n = CONTEXT.min(ra - i).min(rb - j);
        (n == CONTEXT || (ra - i == n && rb - j == n))
            && (0..n).all(|k| a[p + i + k] == b[p + j + k])
    };
    let (i, j) = (1..=ra + rb)
        .flat_map(|d| (d.saturating_sub(rb)..=d.min(ra)).map(move |i| (i, d - i)))
        .find(|&(i, j)| agree(i, j))
        .unwrap_or((ra, rb));

    let mut out = format!(
        "@@ -{},{i} +{},{j} @@ ({} lines in {SCHEMA}, {} from print-schema)\n",
        p + 1,
        p + 1,
        a.len(),
        b.len()
    );
    let mut push = |mark: char, lines: &[&str]| {
        for line in lines.iter().take(MAX_LINES) {
            let line = line.strip_suffix('\n').unwrap_or(line);
            out.push_str(&format!("{mark}{line}\n"));
        }
        if lines.len() > MAX_LINES {
            out.push_str(&format!("{mark}… {} more lines\n", lines.len() - MAX_LINES));
        }
    };
    push(' ', &a[p.saturating_sub(CONTEXT)..p]);
    push('-', &a[p..p + i]);
    push('+', &b[p..p + j]);
    push(' ', &a[p + i..(p + i + CONTEXT).min(a.len())]);
    if old.ends_with('\n') != new.ends_with('\n') {
        // A difference in the final newline alone shows two equal-looking lines.
        out.push_str("(the texts differ in their final newline)\n");
    }
    if a[p + i..] != b[p + j..] {
        out.push_str("(and more differences further down)\n");
    }
    out
}
