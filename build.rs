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
    compile_protos(&root, &out_dir);
}

/// Compiles proto/ with protox (pure Rust, no protoc on the machine), keeps the
/// descriptor set for reflection and generates the tonic service.
fn compile_protos(root: &str, out_dir: &str) {
    use prost::Message as _;
    let proto_dir = Path::new(root).join("proto");
    println!("cargo:rerun-if-changed={}", proto_dir.display());
    let file = "vitals/v1/reports.proto";
    println!("cargo:rerun-if-changed={}", proto_dir.join(file).display());
    let fds = match protox::compile([file], [&proto_dir]) {
        Ok(f) => f,
        Err(e) => panic!("proto/{file}: {e}"),
    };
    std::fs::write(Path::new(out_dir).join("vitals_descriptor.bin"), fds.encode_to_vec()).expect("write the descriptor set");
    tonic_prost_build::configure().build_client(false).build_server(true).compile_fds(fds).expect("generate the report service");
}
