//! The interactive SQL prompt: multi-line statements ended by `;`, history
//! kept in ~/.vitals_history, and a few backslash commands.

use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

use super::render::Format;
use super::{run_query, CliResult};
use crate::engine::Engine;

const HELP: &str = "End a statement with ';'. \\d lists tables, views and functions; \\q quits.";

pub async fn run(engine: &Engine, format: Format, max_rows: usize) -> CliResult {
    let mut editor = DefaultEditor::new()?;
    let history = std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".vitals_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    println!("vitals SQL. {HELP}");
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "vitals> " } else { "   ...> " };
        match editor.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty() {
                    match trimmed {
                        "" => continue,
                        "\\q" | "quit" | "exit" => break,
                        "\\?" | "help" => {
                            println!("{HELP}");
                            continue;
                        }
                        "\\d" => {
                            for e in engine.catalog() {
                                println!("{:<6} {:<45} {}", e.kind, e.name, e.description);
                            }
                            continue;
                        }
                        _ => {}
                    }
                }
                buffer.push_str(&line);
                buffer.push('\n');
                if trimmed.ends_with(';') {
                    let sql = std::mem::take(&mut buffer);
                    let _ = editor.add_history_entry(sql.trim());
                    let mut out = std::io::stdout();
                    if let Err(e) = run_query(engine, sql.trim().trim_end_matches(';'), format, max_rows, &mut out).await {
                        eprintln!("error: {e}");
                    }
                }
            }
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}
