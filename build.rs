//! Embeds every `sql/**/*.sql` file in the binary, in name order, so that a
//! `vitals` binary needs no files beside it.

use std::fmt::Write as _;
use std::path::Path;

fn collect(dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut names: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    names.sort();
    for p in names {
        if p.extension().is_some_and(|e| e == "sql") {
            out.push(p.display().to_string());
        }
    }
}

fn main() {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let mut code = String::new();
    for (konst, sub) in [("VIEWS", "sql/views"), ("REPORTS", "sql/reports")] {
        let dir = Path::new(&root).join(sub);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files = Vec::new();
        collect(&dir, &mut files);
        writeln!(code, "pub static {konst}: &[(&str, &str)] = &[").unwrap();
        for f in &files {
            let name = Path::new(f).file_name().unwrap().to_string_lossy().to_string();
            writeln!(code, "    ({name:?}, include_str!({f:?})),").unwrap();
            println!("cargo:rerun-if-changed={f}");
        }
        writeln!(code, "];").unwrap();
    }
    std::fs::write(Path::new(&out_dir).join("sql_files.rs"), code).expect("write sql_files.rs");
}
