//! Core lists, as `taskset -c` and the kernel write them (`0-3,6`): the one parser behind
//! `serve --cores`, `loadgen --cores` and `tune --cores`, which also reads the kernel's own
//! lists (/sys/devices/system/cpu/online, isolated, thread_siblings_list, a node's cpulist).
//! The command line is parsed here, at the edge; the libraries take the parsed cores.

use std::collections::BTreeSet;

/// Parses a CPU list: numbers and inclusive ranges `LOW-HIGH`, separated by commas, with
/// spaces allowed around each; empty text (how the kernel writes an empty set) is the empty set.
pub fn parse_cpu_list(list: &str) -> Result<BTreeSet<usize>, String> {
    let mut cpus = BTreeSet::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parse = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("invalid core {s:?} in {list:?}"))
        };
        match part.split_once('-') {
            Some((low, high)) => {
                let (low, high) = (parse(low)?, parse(high)?);
                if low > high {
                    return Err(format!("invalid core range {part:?}"));
                }
                cpus.extend(low..=high);
            }
            None => {
                cpus.insert(parse(part)?);
            }
        }
    }
    Ok(cpus)
}

/// Parses a `--cores` list: a CPU list that names at least one core. Sorted, without repeats.
pub fn parse_cores(list: &str) -> Result<Vec<usize>, String> {
    let cores = parse_cpu_list(list)?;
    if cores.is_empty() {
        return Err("the core list is empty".to_string());
    }
    Ok(cores.into_iter().collect())
}

/// `cpus` as a CPU list, with ranges: {0, 1, 2, 3, 6} -> `0-3,6`; the empty set is `none`.
pub fn format_cpu_list(cpus: &BTreeSet<usize>) -> String {
    let mut parts = Vec::new();
    let mut iter = cpus.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last += 1;
            iter.next();
        }
        parts.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_lists_parse_like_taskset() {
        assert_eq!(parse_cores("0-3,6"), Ok(vec![0, 1, 2, 3, 6]));
        assert_eq!(parse_cores("1,1,0"), Ok(vec![0, 1]));
        assert_eq!(parse_cores(" 2 - 3 , 5 "), Ok(vec![2, 3, 5]));
        assert!(parse_cores("").is_err());
        assert!(parse_cores(",").is_err());
        assert!(parse_cores("3-1").is_err());
        assert!(parse_cores("a").is_err());
        assert!(parse_cores("1-").is_err());
    }

    #[test]
    fn cpu_lists_round_trip() {
        let cpus = parse_cpu_list("0-3,6,8-9").unwrap();
        assert_eq!(cpus, BTreeSet::from([0, 1, 2, 3, 6, 8, 9]));
        assert_eq!(format_cpu_list(&cpus), "0-3,6,8-9");
        assert_eq!(parse_cpu_list("0-3,6,8-9\n").unwrap(), cpus);
        assert_eq!(parse_cpu_list("").unwrap(), BTreeSet::new());
        assert_eq!(parse_cpu_list("\n").unwrap(), BTreeSet::new());
        assert_eq!(format_cpu_list(&BTreeSet::new()), "none");
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
    }
}
