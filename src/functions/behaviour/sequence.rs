//! sequence_match and sequence_count: ClickHouse's pattern language over one
//! group's events (rows meeting at least one condition, ordered by time):
//! `(?N)` an event meeting condition N, `.` any event, `.*` any run of
//! events, `(?t<op>S)` the time since the previous matched event, op one of
//! `<= < >= > ==`, S in seconds. Patterns without time constraints run as a
//! small NFA; with them, by backtracking, as ClickHouse does.

use super::buffer::Event;

/// At most this many steps per match attempt, as in ClickHouse.
const MAX_ITERATIONS: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Event(u32),
    Any,
    Star,
    TimeLe(i64),
    TimeLt(i64),
    TimeGe(i64),
    TimeGt(i64),
    TimeEq(i64),
}

/// A state of the NFA used when the pattern has no time constraint.
#[derive(Debug, Clone, Copy, Default)]
struct State {
    star: bool,
    /// None: final; Some(None): any event; Some(Some(bit)): an event meeting condition bit+1.
    next: Option<Option<u32>>,
}

/// A parsed pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    actions: Vec<Action>,
    states: Vec<State>,
    has_time: bool,
    /// Conditions the pattern names: without all of them no match is possible.
    needed: u32,
}

impl Pattern {
    /// Parses `text` for `conditions` conditions; `unit` is how many timestamp
    /// units make a second. The error names the position.
    pub fn parse(text: &str, conditions: usize, unit: i64) -> Result<Pattern, String> {
        let mut actions = vec![Action::Star];
        let mut states = vec![State { star: true, next: None }];
        let mut needed = 0u32;
        let mut has_time = false;
        let bytes = text.as_bytes();
        let mut pos = 0;
        let at = |pos: usize, msg: &str| format!("{msg} at position {pos} of pattern '{text}'");
        let number = |pos: &mut usize| -> Option<u64> {
            let start = *pos;
            while *pos < bytes.len() && bytes[*pos].is_ascii_digit() {
                *pos += 1;
            }
            text[start..*pos].parse().ok()
        };
        while pos < bytes.len() {
            if text[pos..].starts_with("(?") {
                pos += 2;
                if text[pos..].starts_with('t') {
                    pos += 1;
                    let ops: [(&str, fn(i64) -> Action); 5] = [
                        ("<=", Action::TimeLe),
                        ("<", Action::TimeLt),
                        (">=", Action::TimeGe),
                        (">", Action::TimeGt),
                        ("==", Action::TimeEq),
                    ];
                    let Some((op, make)) = ops.iter().find(|(op, _)| text[pos..].starts_with(op)) else {
                        return Err(at(pos, "unknown time condition (use <=, <, >=, > or ==)"));
                    };
                    pos += op.len();
                    let Some(seconds) = number(&mut pos) else { return Err(at(pos, "expected a number of seconds")) };
                    if !matches!(actions.last(), Some(Action::Event(_) | Action::Any | Action::Star)) {
                        return Err(at(pos, "a time condition must follow an event condition"));
                    }
                    let span = i64::try_from(seconds).ok().and_then(|s| s.checked_mul(unit)).ok_or_else(|| at(pos, "time too large"))?;
                    actions.push(make(span));
                    has_time = true;
                } else {
                    let Some(n) = number(&mut pos) else { return Err(at(pos, "expected a condition number")) };
                    if n == 0 || n as usize > conditions {
                        return Err(at(pos, &format!("condition number {n} is out of range 1..{conditions}")));
                    }
                    let bit = n as u32 - 1;
                    actions.push(Action::Event(bit));
                    if let Some(last) = states.last_mut() {
                        last.next = Some(Some(bit));
                    }
                    states.push(State::default());
                    needed |= 1 << bit;
                }
                if !text[pos..].starts_with(')') {
                    return Err(at(pos, "expected ')'"));
                }
                pos += 1;
            } else if text[pos..].starts_with(".*") {
                pos += 2;
                actions.push(Action::Star);
                if let Some(last) = states.last_mut() {
                    last.star = true;
                }
            } else if text[pos..].starts_with('.') {
                pos += 1;
                actions.push(Action::Any);
                if let Some(last) = states.last_mut() {
                    last.next = Some(None);
                }
                states.push(State::default());
            } else {
                return Err(at(pos, "unexpected character (a pattern is made of (?N), ., .* and (?t<op>S))"));
            }
        }
        Ok(Pattern { actions, states, has_time, needed })
    }

    fn possible(&self, events: &[Event]) -> bool {
        let seen = events.iter().fold(0u32, |m, e| m | e.1);
        seen & self.needed == self.needed
    }

    /// Whether the events (sorted by time) match the pattern.
    pub fn matches(&self, events: &[Event]) -> Result<bool, String> {
        if !self.possible(events) {
            return Ok(false);
        }
        if self.has_time {
            let mut pos = 0;
            self.backtrack(events, &mut pos)
        } else {
            Ok(self.nfa(events))
        }
    }

    /// Non-overlapping matches, counted from left to right.
    pub fn count(&self, events: &[Event]) -> Result<u64, String> {
        if !self.possible(events) {
            return Ok(0);
        }
        let mut pos = 0;
        let mut n = 0;
        while pos < events.len() && self.backtrack(events, &mut pos)? {
            n += 1;
        }
        Ok(n)
    }

    fn nfa(&self, events: &[Event]) -> bool {
        let m = self.states.len();
        let mut active = vec![false; m];
        let mut next = vec![false; m];
        active[0] = true;
        let mut live = 1;
        for &(_, mask) in events {
            if live == 0 || active[m - 1] {
                break;
            }
            live = 0;
            next.iter_mut().for_each(|x| *x = false);
            for s in 0..m {
                if !active[s] {
                    continue;
                }
                match self.states[s].next {
                    Some(None) => {
                        next[s + 1] = true;
                        live += 1;
                    }
                    Some(Some(bit)) if mask & (1 << bit) != 0 => {
                        next[s + 1] = true;
                        live += 1;
                    }
                    _ => {}
                }
                if self.states[s].star {
                    next[s] = true;
                    live += 1;
                }
            }
            std::mem::swap(&mut active, &mut next);
        }
        active[m - 1]
    }

    /// One match attempt from `*pos`; on return `*pos` is where the next attempt starts.
    fn backtrack(&self, events: &[Event], pos: &mut usize) -> Result<bool, String> {
        let end = events.len();
        let begin = *pos;
        let mut action = 0usize;
        let mut it = *pos;
        let mut base = *pos;
        let mut stack: Vec<(usize, usize, usize)> = Vec::new();
        let backtrack = |stack: &mut Vec<(usize, usize, usize)>, action: &mut usize, it: &mut usize, base: &mut usize| {
            while let Some((a, e, b)) = stack.pop() {
                *action = a;
                *it = e + 1;
                *base = b;
                if *it != end {
                    return true;
                }
            }
            false
        };
        let within = |it: usize, base: usize, f: &dyn Fn(i128, i128) -> bool, span: i64| {
            f(events[it].0 as i128, events[base].0 as i128 + span as i128)
        };
        let mut steps = 0usize;
        while action < self.actions.len() && it < end {
            match self.actions[action] {
                Action::Event(bit) => {
                    if events[it].1 & (1 << bit) != 0 {
                        base = it;
                        action += 1;
                        it += 1;
                    } else if !backtrack(&mut stack, &mut action, &mut it, &mut base) {
                        break;
                    }
                }
                Action::Any => {
                    base = it;
                    action += 1;
                    it += 1;
                }
                Action::Star => {
                    stack.push((action, it, base));
                    base = it;
                    action += 1;
                }
                Action::TimeLe(s) | Action::TimeLt(s) => {
                    let ok = if matches!(self.actions[action], Action::TimeLe(_)) {
                        within(it, base, &|a, b| a <= b, s)
                    } else {
                        within(it, base, &|a, b| a < b, s)
                    };
                    if ok {
                        stack.push((action, it, base));
                        base = it;
                        action += 1;
                    } else if !backtrack(&mut stack, &mut action, &mut it, &mut base) {
                        break;
                    }
                }
                Action::TimeGe(s) | Action::TimeGt(s) | Action::TimeEq(s) => {
                    let ok = match self.actions[action] {
                        Action::TimeGe(_) => within(it, base, &|a, b| a >= b, s),
                        Action::TimeGt(_) => within(it, base, &|a, b| a > b, s),
                        _ => within(it, base, &|a, b| a == b, s),
                    };
                    if ok {
                        stack.push((action, it, base));
                        base = it;
                        action += 1;
                    } else {
                        it += 1;
                        if it == end && !backtrack(&mut stack, &mut action, &mut it, &mut base) {
                            break;
                        }
                    }
                }
            }
            steps += 1;
            if steps > MAX_ITERATIONS {
                return Err(format!("the pattern needs more than {MAX_ITERATIONS} steps on one group"));
            }
        }
        // Trailing actions that can match nothing.
        while action < self.actions.len()
            && matches!(self.actions[action], Action::Star | Action::TimeLe(_) | Action::TimeLt(_) | Action::TimeGe(0))
        {
            action += 1;
        }
        if it == begin {
            it += 1;
        }
        *pos = it;
        Ok(action == self.actions.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(list: &[(i64, u32)]) -> Vec<Event> {
        list.to_vec()
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// Any text: a pattern or an error, never a panic; any event stream then matches or errs.
        #[test]
        fn any_text_parses_or_fails_cleanly(text in "\\PC{0,40}|[(?t<>=.*0-9)]{0,30}", conditions in 1usize..=32, unit in proptest::prop_oneof![proptest::strategy::Just(1i64), proptest::strategy::Just(1_000_000i64)]) {
            if let Ok(p) = Pattern::parse(&text, conditions, unit) {
                let events = ev(&[(0, 1), (5, 2), (5, 3), (i64::MAX, 1), (i64::MIN, 2)]);
                let _ = p.matches(&events);
                let _ = p.count(&events);
            }
        }

        /// Patterns written by the grammar's rules parse.
        #[test]
        fn grammatical_patterns_parse(parts in proptest::collection::vec(proptest::prop_oneof![
            (1u32..=4).prop_map(|n| format!("(?{n})")),
            proptest::strategy::Just(".".to_string()),
            proptest::strategy::Just(".*".to_string()),
        ], 1..8), time in proptest::option::of((0usize..5, 0u32..100_000))) {
            let mut text: String = parts.concat();
            if let Some((op, secs)) = time {
                text = format!("(?1)(?t{}{secs}){text}", ["<=", "<", ">=", ">", "=="][op]);
            }
            proptest::prop_assert!(Pattern::parse(&text, 4, 1).is_ok(), "{}", text);
        }
    }

    #[test]
    fn patterns_parse_or_say_where_they_fail() {
        assert!(Pattern::parse("(?1).*(?2)(?t<=10)(?3)", 3, 1).is_ok());
        let e = Pattern::parse("(?1)(?4)", 3, 1).unwrap_err();
        assert!(e.contains("out of range") && e.contains("position 7"), "{e}");
        assert!(Pattern::parse("(?1)(?t~5)", 3, 1).unwrap_err().contains("unknown time condition"));
        assert!(Pattern::parse("(?1", 3, 1).unwrap_err().contains("expected ')'"));
        assert!(Pattern::parse("x", 3, 1).unwrap_err().contains("position 0"));
    }

    #[test]
    fn matching_and_counting_follow_the_pattern() {
        let p = Pattern::parse("(?1)(?2)", 2, 1).unwrap();
        // Rows meeting no condition are never stored, so 1 then 2 are adjacent here.
        assert!(p.matches(&ev(&[(1, 1), (2, 2)])).unwrap());
        assert!(!p.matches(&ev(&[(1, 1), (2, 1)])).unwrap());
        let any = Pattern::parse("(?1).*(?2)", 2, 1).unwrap();
        assert_eq!(any.count(&ev(&[(1, 1), (2, 2), (3, 1), (4, 1), (5, 2)])).unwrap(), 2);
        let timed = Pattern::parse("(?1)(?t<=5)(?2)", 2, 1).unwrap();
        assert!(timed.matches(&ev(&[(1, 1), (6, 2)])).unwrap());
        assert!(!timed.matches(&ev(&[(1, 1), (7, 2)])).unwrap());
    }
}
