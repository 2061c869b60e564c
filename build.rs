//! Embeds every `sql/**/*.sql` file in the binary, in name order, and the
//! dashboard's charting library (installed by `npm ci` from `web/`'s lock
//! file into OUT_DIR), so that a `vitals` binary needs no files beside it.

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
    for (konst, sub) in [("VIEWS", "sql/views"), ("REPORTS", "sql/reports"), ("PARTS", "sql/parts")] {
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
    install_charts(&root, &out_dir);
}

/// Installs the charting library pinned by `web/package-lock.json` into
/// OUT_DIR with `npm ci` (again only when the lock file changes) and writes
/// the path of its browser build for `include_bytes!`.
fn install_charts(root: &str, out_dir: &str) {
    let web = Path::new(root).join("web");
    let lock = web.join("package-lock.json");
    println!("cargo:rerun-if-changed={}", lock.display());
    println!("cargo:rerun-if-changed={}", web.join("package.json").display());
    println!("cargo:rerun-if-env-changed=npm_config_registry");
    let dir = Path::new(out_dir).join("web");
    let bundle = dir.join("node_modules/echarts/dist/echarts.min.js");
    let wanted = std::fs::read(&lock).unwrap_or_else(|e| panic!("{}: {e}", lock.display()));
    let installed = std::fs::read(dir.join("package-lock.json")).ok();
    if installed.as_deref() != Some(wanted.as_slice()) || !bundle.exists() {
        std::fs::create_dir_all(&dir).expect("create OUT_DIR/web");
        for f in ["package.json", "package-lock.json"] {
            std::fs::copy(web.join(f), dir.join(f)).unwrap_or_else(|e| panic!("copy web/{f}: {e}"));
        }
        let status = std::process::Command::new("npm")
            .args(["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("`npm ci` in {} failed ({s}): the dashboard's charting library comes from the npm registry (Node 20 and npm needed)", dir.display()),
            Err(e) => panic!("cannot run npm ({e}): building vitals needs Node 20 and npm for the dashboard's charting library"),
        }
        assert!(bundle.exists(), "npm ci did not install {}", bundle.display());
    }
    let code = format!("pub static ECHARTS_JS: &[u8] = include_bytes!({:?});\n", bundle.display().to_string());
    std::fs::write(Path::new(out_dir).join("web_assets.rs"), code).expect("write web_assets.rs");
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
