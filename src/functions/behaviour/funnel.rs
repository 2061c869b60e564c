//! window_funnel's level computation, with ClickHouse's semantics: events
//! ordered by (timestamp, condition index); a condition-1 event (re)starts a
//! chain; condition k extends level k-1 while its timestamp is within
//! `window` of the chain's start (inclusive); the modes change what a repeated
//! or out-of-order step does.

use super::buffer::Event;

/// The modes of window_funnel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Modes {
    /// A repeated step ends the search.
    pub strict_deduplication: bool,
    /// Any other event between steps ends the search.
    pub strict_order: bool,
    /// Steps need strictly increasing timestamps.
    pub strict_increase: bool,
    /// With strict_order: a step that comes too early is skipped instead of ending the search.
    pub allow_reentry: bool,
    /// One row counts for at most one step of a chain, even if it meets several conditions.
    pub strict_once: bool,
}

impl Modes {
    /// Parses "strict_order, strict_increase"; the message says what is wrong.
    pub fn parse(text: &str) -> Result<Modes, String> {
        let mut m = Modes::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "strict_deduplication" => m.strict_deduplication = true,
                "strict_order" => m.strict_order = true,
                "strict_increase" => m.strict_increase = true,
                "allow_reentry" => m.allow_reentry = true,
                "strict_once" => m.strict_once = true,
                "strict" => return Err("mode 'strict' is now called 'strict_deduplication'".into()),
                other => {
                    return Err(format!(
                        "unknown mode '{other}'; modes are strict_deduplication, strict_order, strict_increase, allow_reentry, strict_once"
                    ))
                }
            }
        }
        if m.allow_reentry && !m.strict_order {
            return Err("mode allow_reentry needs strict_order too".into());
        }
        Ok(m)
    }
}

/// The highest step reached by one group's events, sorted by (timestamp, mask).
/// Bit i of a mask is condition i+1; with strict_order a mask of 0 is an event
/// that met no condition.
pub fn level(events: &[Event], steps: usize, window: i64, modes: Modes) -> u8 {
    run(events, steps, window, modes, None)
}

/// The timestamps of the steps of the chain that reached the highest level
/// (as many as the level), for times to convert between steps.
pub fn path(events: &[Event], steps: usize, window: i64, modes: Modes) -> Vec<i64> {
    let mut path = vec![[0i64; 32]; steps];
    let l = run(events, steps, window, modes, Some(&mut path)) as usize;
    if l == 0 {
        return Vec::new();
    }
    path[l - 1][..l].to_vec()
}

/// `paths[k]`, when asked for, ends as the step times of a chain that reached level k+1.
fn run(events: &[Event], steps: usize, window: i64, modes: Modes, paths: Option<&mut Vec<[i64; 32]>>) -> u8 {
    if events.is_empty() {
        return 0;
    }
    if !modes.strict_order && steps == 1 {
        if let Some(p) = paths {
            p[0][0] = events[0].0;
        }
        return 1;
    }
    if modes.strict_once {
        return level_once(events, steps, window, modes, paths);
    }
    let mut state = Chain { reached: [None; 32], steps, window, modes, started: false, paths };
    let mut i = 0;
    while i < events.len() {
        // Events with equal timestamps are taken in condition order.
        let ts = events[i].0;
        let mut j = i;
        while j < events.len() && events[j].0 == ts {
            j += 1;
        }
        let tie = &events[i..j];
        if tie.len() == 1 {
            let mask = tie[0].1;
            if mask == 0 {
                if let Some(l) = state.step(ts, 0) {
                    return l;
                }
            }
            let mut bits = mask;
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(l) = state.step(ts, b + 1) {
                    return l;
                }
            }
        } else {
            for idx in 0..=steps {
                for &(_, mask) in tie {
                    let hit = if idx == 0 { mask == 0 } else { mask & (1 << (idx - 1)) != 0 };
                    if hit {
                        if let Some(l) = state.step(ts, idx) {
                            return l;
                        }
                    }
                }
            }
        }
        i = j;
    }
    state.highest()
}

struct Chain<'a> {
    /// For each step reached: (timestamp of the chain's start, timestamp of this step).
    reached: [Option<(i64, i64)>; 32],
    steps: usize,
    window: i64,
    modes: Modes,
    started: bool,
    paths: Option<&'a mut Vec<[i64; 32]>>,
}

impl Chain<'_> {
    fn highest(&self) -> u8 {
        (0..self.steps).rev().find(|&k| self.reached[k].is_some()).map_or(0, |k| k as u8 + 1)
    }

    /// Feeds one (timestamp, condition index) event; `Some(level)` ends the search.
    fn step(&mut self, ts: i64, idx: usize) -> Option<u8> {
        if idx == 0 {
            // Only stored under strict_order: an unrelated event.
            return self.started.then(|| self.highest());
        }
        let k = idx - 1;
        if k == 0 {
            self.reached[0] = Some((ts, ts));
            self.started = true;
            if let Some(p) = self.paths.as_deref_mut() {
                p[0][0] = ts;
            }
            return None;
        }
        if self.modes.strict_deduplication && self.reached[k].is_some() {
            return Some(self.highest());
        }
        if self.modes.strict_order && self.started && self.reached[k - 1].is_none() {
            if self.modes.allow_reentry {
                return None;
            }
            return Some((0..self.steps).find(|&s| self.reached[s].is_none()).unwrap_or(self.steps) as u8);
        }
        if let Some((first, prev)) = self.reached[k - 1] {
            let mut matched = (ts as i128) <= first as i128 + self.window as i128;
            if self.modes.strict_increase {
                matched &= prev < ts;
            }
            if matched {
                // A step repeated within one chain keeps its first time in the path.
                let fresh = self.reached[k].is_none_or(|(f, _)| f != first);
                self.reached[k] = Some((first, ts));
                if let (true, Some(p)) = (fresh, self.paths.as_deref_mut()) {
                    p[k] = p[k - 1];
                    p[k][k] = ts;
                }
                if k + 1 == self.steps {
                    return Some(self.steps as u8);
                }
            }
        }
        None
    }
}

/// One chain under strict_once: its start, its last step's time, and the
/// row that made each step (rows are their index in the group's events).
#[derive(Clone, Copy)]
struct Path {
    first: i64,
    last: i64,
    rows: [u32; 32],
}

/// window_funnel with strict_once: every chain is kept, so that a row meeting
/// several conditions is used for one step of a chain only.
fn level_once(events: &[Event], steps: usize, window: i64, modes: Modes, paths: Option<&mut Vec<[i64; 32]>>) -> u8 {
    let mut levels: Vec<Vec<Path>> = vec![Vec::new(); steps];
    let l = once_levels(events, steps, window, modes, &mut levels);
    if let Some(p) = paths {
        // The first chain to reach each level.
        for (k, chains) in levels.iter().enumerate() {
            if let Some(last) = chains.first() {
                for i in 0..=k {
                    p[k][i] = events[last.rows[i] as usize].0;
                }
            }
        }
    }
    l
}

fn once_levels(events: &[Event], steps: usize, window: i64, modes: Modes, levels: &mut [Vec<Path>]) -> u8 {
    let highest = |levels: &[Vec<Path>]| (0..steps).rev().find(|&k| !levels[k].is_empty()).map_or(0, |k| k as u8 + 1);
    let mut started = false;
    // Entries in (timestamp, condition, row) order.
    let mut order: Vec<(i64, usize, u32)> = Vec::with_capacity(events.len());
    for (row, &(ts, mask)) in events.iter().enumerate() {
        if mask == 0 {
            order.push((ts, 0, row as u32));
        }
        let mut bits = mask;
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            order.push((ts, b + 1, row as u32));
        }
    }
    order.sort_unstable();
    for (ts, idx, row) in order {
        if idx == 0 {
            if started {
                break;
            }
            continue;
        }
        let k = idx - 1;
        if k == 0 {
            let mut rows = [0u32; 32];
            rows[0] = row;
            levels[0].push(Path { first: ts, last: ts, rows });
            started = true;
        } else if modes.strict_deduplication && !levels[k].is_empty() {
            return highest(levels);
        } else if modes.strict_order && started && levels[k - 1].is_empty() {
            if modes.allow_reentry {
                continue;
            }
            return (0..steps).find(|&s| levels[s].is_empty()).unwrap_or(steps) as u8;
        } else if !levels[k - 1].is_empty() {
            let mut i = 0;
            while i < levels[k - 1].len() {
                let p = levels[k - 1][i];
                let mut matched = (ts as i128) <= p.first as i128 + window as i128;
                if !matched && levels[k - 1].len() > 1 {
                    // Out of the window for good: drop it, but keep one chain.
                    levels[k - 1].remove(i);
                    continue;
                }
                matched = matched && !p.rows[..k].contains(&row);
                if matched && modes.strict_increase {
                    matched = p.last < ts;
                }
                if matched {
                    let mut rows = p.rows;
                    rows[k] = row;
                    levels[k].push(Path { first: p.first, last: ts, rows });
                    if k + 1 == steps {
                        return steps as u8;
                    }
                }
                i += 1;
            }
        }
    }
    highest(levels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(list: &[(i64, &[usize])]) -> Vec<Event> {
        let mut v: Vec<Event> = list.iter().map(|(t, c)| (*t, c.iter().fold(0u32, |m, i| m | 1 << (i - 1)))).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn chains_restart_and_respect_the_inclusive_window() {
        let m = Modes::default();
        assert_eq!(level(&ev(&[(0, &[1]), (10, &[2]), (20, &[3])]), 3, 20, m), 3);
        assert_eq!(level(&ev(&[(0, &[1]), (10, &[2]), (21, &[3])]), 3, 20, m), 2);
        // A later step 1 restarts the chain's clock.
        assert_eq!(level(&ev(&[(0, &[1]), (10, &[2]), (15, &[1]), (30, &[2]), (34, &[3])]), 3, 20, m), 3);
        // One row meeting conditions 1 and 2 is step 1 and then step 2.
        assert_eq!(level(&ev(&[(5, &[1, 2])]), 2, 20, m), 2);
    }

    #[test]
    fn modes_change_repeated_and_out_of_order_steps() {
        let dedup = Modes { strict_deduplication: true, ..Modes::default() };
        assert_eq!(level(&ev(&[(0, &[1]), (1, &[2]), (2, &[2]), (3, &[3])]), 3, 10, dedup), 2);
        let order = Modes { strict_order: true, ..Modes::default() };
        assert_eq!(level(&ev(&[(0, &[1]), (1, &[2]), (2, &[]), (3, &[3])]), 3, 10, order), 2);
        let inc = Modes { strict_increase: true, ..Modes::default() };
        assert_eq!(level(&ev(&[(0, &[1]), (0, &[2]), (1, &[3])]), 3, 10, inc), 1);
        assert!(Modes::parse("allow_reentry").is_err());
        assert!(Modes::parse("strict_order, allow_reentry").is_ok());
    }

    #[test]
    fn path_follows_the_chain_that_counts() {
        let m = Modes::default();
        // The restart at 15 makes the chain 15 -> 30 -> 34.
        assert_eq!(path(&ev(&[(0, &[1]), (10, &[2]), (15, &[1]), (30, &[2]), (34, &[3])]), 3, 20, m), vec![15, 30, 34]);
        assert_eq!(path(&ev(&[(0, &[1]), (10, &[2]), (31, &[3])]), 3, 20, m), vec![0, 10]);
        // A repeated step 2 in the same chain keeps the first time.
        assert_eq!(path(&ev(&[(0, &[1]), (4, &[2]), (9, &[2]), (12, &[3])]), 3, 20, m), vec![0, 4, 12]);
        assert_eq!(path(&ev(&[(3, &[2])]), 3, 20, m), Vec::<i64>::new());
        let once = Modes { strict_once: true, ..Modes::default() };
        assert_eq!(path(&ev(&[(5, &[1, 2]), (7, &[2])]), 2, 20, once), vec![5, 7]);
        assert_eq!(level(&ev(&[(5, &[1, 2]), (7, &[2])]), 2, 20, once), 2);
    }
}
