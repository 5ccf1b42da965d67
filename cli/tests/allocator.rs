//! Goal: the `ringbus` binary runs jemalloc with the options cli/src/main.rs compiles in
//! (`_rjem_malloc_conf`): a symbol that jemalloc reads only if its name and layout are right,
//! and that silently does nothing otherwise (a renamed prefix, an allocator feature change).
//!
//! Method: run the real binary with `_RJEM_MALLOC_CONF=stats_print:true` (jemalloc then prints
//! its options and statistics at exit; the environment adds to the compiled-in string, it does
//! not replace it) and read the option back from what it printed.

use std::process::Command;

#[test]
fn the_binary_runs_jemalloc_without_the_oversize_arena() {
    let output = Command::new(env!("CARGO_BIN_EXE_ringbus"))
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .expect("run ringbus --version");
    assert!(
        output.status.success(),
        "ringbus --version failed: {output:?}"
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let option = printed
        .lines()
        .find(|line| line.trim_start().starts_with("opt.oversize_threshold:"))
        .unwrap_or_else(|| panic!("jemalloc printed no opt.oversize_threshold:\n{printed}"));
    assert_eq!(
        option.trim(),
        "opt.oversize_threshold: 0",
        "the compiled-in malloc_conf did not reach jemalloc"
    );
}
