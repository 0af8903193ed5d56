//! The search for a linearization: Wing and Gong's algorithm with Lowe's
//! memoization, one key at a time.
//!
//! A key's known operations (those that returned) become a doubly linked
//! list of call and return events in time order (a call before a return at
//! the same time, so operations that touch are concurrent). The search
//! walks the list from its head. At a call it tries to linearize that
//! operation next: if the register allows it, the operation's call and
//! return are lifted out of the list, the choice is pushed on a stack and
//! the walk restarts from the head. At a return it has met an operation
//! that should have been linearized before that point; it tries the
//! operations of unknown outcome worth trying (below), and then pops the
//! last choice, puts its events back and moves on to the next candidate
//! after it. The list running out means every known operation is
//! linearized: success. The stack running out means no order exists.
//!
//! Memoization: the rest of the search depends only on which operations are
//! linearized and the register's value (and, after an unknown operation, two
//! more values, below), so each such state is entered at most once; a
//! choice that leads to a state already entered is skipped, since that
//! state was explored and failed (or the search would have ended). The
//! linearized known operations are all those called before the first
//! return left in the list, except the ones still in the list, so a state
//! is stored as that return and those few calls, not as a bit per
//! operation. Dominance prunes further: after a known operation, a state
//! whose linearized set only adds unknown operations to that of a state
//! entered before with the same value is skipped, since everything that can
//! follow it can follow the other, which leaves those operations pending.
//!
//! Operations of unknown outcome may be linearized any time after their
//! call, and need not be at all. Failed or unknown reads and failed writes
//! are left out from the start. Trying every subset of the rest at every
//! point would explode when a partition makes many writes time out, so the
//! search only tries orders of a normal form, which exists whenever any
//! order does:
//! - An unknown operation that would change nothing is not tried: leaving
//!   it out is the same.
//! - Unknown operations with the same effect are linearized in call order:
//!   the earlier one can stand in for the later one anywhere after both
//!   calls.
//! - An unknown operation that replaces the value `s` is followed at once
//!   by an operation that `s` would not allow (a read of the new value, a
//!   cas from it, a failed cas from `s`); a run of them, by a known
//!   operation that the value before the run would not allow. Any order can
//!   be brought to this form: unknown operations followed by a write, or by
//!   nothing, can be dropped (nothing sees their values), and a read or
//!   failed cas that the earlier value allows can move before them (no
//!   operation has to precede one that never returned). So an unknown
//!   operation is only tried when an operation that can follow it is
//!   pending: unknown operations are not in the list but in a set of those
//!   that some pending operation needs ([`KeySearch::live`]).
//! - Values that no operation tests the register against (no read returned
//!   them, no cas expects them) are all alike to the model and share one
//!   number.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use super::model::{self, ABSENT, RegisterOp, Value};
use super::{
    Counterexample, History, KeyStats, OpKind, Operation, Outcome, Placed, Report, Verdict,
};

/// The number of every value no operation tests the register against:
/// such values are all alike to the model (see [`KeySearch::new`]).
const UNTESTED: Value = 1;

/// Work (search steps, memo keys built and compared) between two looks at
/// the clock.
const WORK_PER_CLOCK_CHECK: u64 = 1 << 12;

/// The most words a key's memo may hold (about 1 GiB) before the search
/// gives up.
const MEMO_LIMIT_WORDS: usize = 1 << 27;

/// The words each memo entry costs besides its own (allocation, table).
const ENTRY_OVERHEAD_WORDS: usize = 4;

/// The position of the list's head sentinel in [`KeySearch::events`].
const HEAD: usize = 0;

/// Checks `history`, giving up after `timeout` with [`Verdict::Unknown`].
pub fn check(history: &History, timeout: Duration) -> Verdict {
    check_report(history, timeout).verdict
}

/// Checks `history` key by key (in key order), giving up after `timeout`,
/// and returns the verdict with figures for each key searched. The search
/// stops at the first key that is not linearizable.
pub fn check_report(history: &History, timeout: Duration) -> Report {
    let deadline = Instant::now().checked_add(timeout);
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, op) in history.operations().iter().enumerate() {
        by_key.entry(&op.key).or_default().push(index);
    }
    let mut keys = Vec::new();
    for (key, indices) in by_key {
        let mut search = KeySearch::new(history, key, &indices);
        let outcome = search.run(deadline);
        keys.push(KeyStats {
            key: key.to_owned(),
            operations: search.ops.len(),
            states: search.states,
        });
        let verdict = match outcome {
            SearchOutcome::Linearizable => continue,
            SearchOutcome::NotLinearizable => Verdict::NotLinearizable(search.counterexample()),
            SearchOutcome::OutOfTime | SearchOutcome::OutOfMemory => {
                let limit = match outcome {
                    SearchOutcome::OutOfTime => format!("ran out of time ({timeout:?} allowed)"),
                    _ => format!(
                        "reached its memory limit ({} MiB of states)",
                        MEMO_LIMIT_WORDS >> 17
                    ),
                };
                Verdict::Unknown(format!(
                    "the checker {limit} on key {key:?}: {} states entered, \
                     at most {} of its {} operations linearized at once",
                    search.states,
                    search.deepest,
                    search.ops.len()
                ))
            }
        };
        return Report { verdict, keys };
    }
    Report {
        verdict: Verdict::Linearizable,
        keys,
    }
}

/// How a key's search ended.
enum SearchOutcome {
    Linearizable,
    NotLinearizable,
    OutOfTime,
    OutOfMemory,
}

/// One entry of the event list.
#[derive(Debug, Clone, Copy)]
enum Event {
    /// The sentinel at [`HEAD`], which is also where the list ends.
    Head,
    /// The call of the operation `ops[i]`.
    Call(usize),
    /// The return of the operation `ops[i]`.
    Return(usize),
}

/// An operation the search orders.
#[derive(Debug)]
struct KeyOp {
    /// Its index in the history.
    index: usize,
    /// What it does to the register.
    op: RegisterOp,
    /// Its outcome is unknown: it has no return event, and its call event
    /// is not in the list (see [`KeySearch::live`]).
    unknown: bool,
    /// The value it needs the register to hold (a read's, a cas's `from`).
    needs: Option<Value>,
    /// For an unknown operation: its bit in the set of linearized unknown
    /// operations.
    bit: usize,
    /// For an unknown operation, the unknown operation with the same effect
    /// called last before it, which must be linearized first.
    twin_before: Option<usize>,
    /// For an unknown operation, how many operations not linearized need
    /// the value it sets.
    needed_by: usize,
    /// The position of its call event.
    call: usize,
    /// The position of its return event, if any.
    ret: Option<usize>,
}

/// An operation on the search's stack.
#[derive(Debug, Clone, Copy)]
struct Linearized {
    /// The operation.
    op: usize,
    /// The register's value before it.
    before: Value,
    /// If it is unknown, the value before the run of unknown operations
    /// that ends with it.
    run_start: Option<Value>,
}

/// Where the search is among the candidates for the next operation.
#[derive(Debug, Clone, Copy)]
enum Cursor {
    /// Walking the list of known operations, at this position.
    Known(usize),
    /// Trying unknown operations, from this one on.
    Unknown(usize),
}

/// The furthest point in time the search reached: a return event it could
/// not get past, with the operations linearized there, in order.
struct Frontier {
    event: usize,
    prefix: Vec<usize>,
}

type WordSet<T> = HashSet<T, BuildHasherDefault<WordHasher>>;
type WordMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// The search state of one key.
struct KeySearch<'h> {
    history: &'h History,
    key: &'h str,
    ops: Vec<KeyOp>,
    /// The events in time order, after [`Event::Head`] at [`HEAD`],
    /// including the calls of unknown operations (for their positions).
    events: Vec<Event>,
    /// The circular list over the events of known operations: neighbours
    /// of each position.
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The operations that need the register to hold a value (reads of
    /// it, cas from it) and those that need it not to (failed cas from
    /// it), by value, in call order.
    needing: HashMap<Value, Vec<usize>>,
    failing_on: HashMap<Value, Vec<usize>>,
    /// The unknown operations that set a value, by value.
    setting: HashMap<Value, Vec<usize>>,
    /// Which operations are linearized; the unknown ones also as bits.
    linearized: Vec<bool>,
    unknown_bits: Vec<u64>,
    /// The unknown operations not linearized, and those of them that some
    /// operation not linearized needs (`needed_by > 0`): only these can be
    /// worth linearizing, unless a failed cas needs the value to change.
    pending_unknown: BTreeSet<usize>,
    live: BTreeSet<usize>,
    /// The linearized operations in order.
    stack: Vec<Linearized>,
    /// The register's value after them.
    state: Value,
    /// The position of the first return event in the list (`usize::MAX`
    /// if none): the operations called before it can be linearized next.
    first_return: usize,
    /// States entered after an unknown operation (see [`Self::enter`]).
    after_unknown: WordSet<Box<[u64]>>,
    /// States entered after a known operation, with the sets of unknown
    /// operations linearized each time.
    after_known: WordMap<Box<[u64]>, Vec<Box<[u64]>>>,
    /// States entered so far.
    states: usize,
    /// Work done so far, to know when to look at the clock.
    work: u64,
    /// Words stored in the memo so far.
    memo_words: usize,
    frontier: Option<Frontier>,
    /// The most operations linearized at once.
    deepest: usize,
}

impl<'h> KeySearch<'h> {
    /// The search over the operations of `key` at `indices` in `history`.
    /// Values that no read returned and no cas expects are all alike to
    /// the model, so they share one number, [`UNTESTED`].
    fn new(history: &'h History, key: &'h str, indices: &[usize]) -> Self {
        let operations: Vec<(usize, &'h Operation)> = indices
            .iter()
            .map(|&index| (index, &history.operations()[index]))
            .collect();
        let mut tested: HashSet<&'h str> = HashSet::new();
        for (_, operation) in &operations {
            match (&operation.kind, operation.outcome) {
                (OpKind::Read { value: Some(value) }, Outcome::Ok)
                | (
                    OpKind::Cas {
                        from: Some(value), ..
                    },
                    _,
                ) => {
                    tested.insert(value);
                }
                _ => {}
            }
        }
        let mut numbers: HashMap<&'h str, Value> = HashMap::new();
        let mut number = |value: Option<&'h str>| match value {
            None => ABSENT,
            Some(value) if !tested.contains(value) => UNTESTED,
            Some(value) => {
                let next = Value::try_from(numbers.len() + 2).expect("fewer than 2^32 values");
                *numbers.entry(value).or_insert(next)
            }
        };
        let mut unknown_count = 0;
        let mut ops = Vec::new();
        for (index, operation) in operations {
            if let Some(op) = RegisterOp::of(operation, &mut number) {
                let unknown = operation.outcome == Outcome::Unknown;
                let needs = match op {
                    RegisterOp::Read { saw: value } | RegisterOp::Cas { from: value, .. } => {
                        Some(value)
                    }
                    RegisterOp::Write { .. } | RegisterOp::FailedCas { .. } => None,
                };
                ops.push(KeyOp {
                    index,
                    op,
                    unknown,
                    needs,
                    bit: unknown_count,
                    twin_before: None,
                    needed_by: 0,
                    call: 0,
                    ret: None,
                });
                unknown_count += usize::from(unknown);
            }
        }
        // (time, 0 for a call and 1 for a return, operation): calls first
        // at equal times, then history order, so the list is deterministic.
        let mut timed = Vec::with_capacity(2 * ops.len());
        for (i, key_op) in ops.iter().enumerate() {
            let operation = &history.operations()[key_op.index];
            timed.push((operation.call_time, 0, i));
            if !key_op.unknown {
                let ret = operation.return_time.expect("History::new checked it");
                timed.push((ret, 1, i));
            }
        }
        timed.sort_unstable();
        let mut events = vec![Event::Head];
        let mut last_unknown: HashMap<RegisterOp, usize> = HashMap::new();
        let mut needing: HashMap<Value, Vec<usize>> = HashMap::new();
        let mut failing_on: HashMap<Value, Vec<usize>> = HashMap::new();
        let mut setting: HashMap<Value, Vec<usize>> = HashMap::new();
        for (_, is_return, i) in timed {
            let position = events.len();
            if is_return == 1 {
                ops[i].ret = Some(position);
                events.push(Event::Return(i));
                continue;
            }
            ops[i].call = position;
            events.push(Event::Call(i));
            if let Some(value) = ops[i].needs {
                needing.entry(value).or_default().push(i);
            }
            if let RegisterOp::FailedCas { from } = ops[i].op {
                failing_on.entry(from).or_default().push(i);
            }
            if ops[i].unknown {
                ops[i].twin_before = last_unknown.insert(ops[i].op, i);
                if let RegisterOp::Write { value } | RegisterOp::Cas { to: value, .. } = ops[i].op {
                    setting.entry(value).or_default().push(i);
                }
            }
        }
        for (&value, setters) in &setting {
            for &u in setters {
                let needers = needing.get(&value).map_or(&[][..], Vec::as_slice);
                ops[u].needed_by = needers.iter().filter(|&&j| j != u).count();
            }
        }
        // The list links the events of known operations only.
        let linked: Vec<usize> = (0..events.len())
            .filter(|&position| match events[position] {
                Event::Head | Event::Return(_) => true,
                Event::Call(i) => !ops[i].unknown,
            })
            .collect();
        let (mut next, mut prev) = (vec![HEAD; events.len()], vec![HEAD; events.len()]);
        for (k, &position) in linked.iter().enumerate() {
            next[position] = linked[(k + 1) % linked.len()];
            prev[position] = linked[(k + linked.len() - 1) % linked.len()];
        }
        let pending_unknown: BTreeSet<usize> = (0..ops.len()).filter(|&i| ops[i].unknown).collect();
        let live = pending_unknown
            .iter()
            .copied()
            .filter(|&u| ops[u].needed_by > 0)
            .collect();
        let mut search = Self {
            history,
            key,
            linearized: vec![false; ops.len()],
            ops,
            events,
            next,
            prev,
            needing,
            failing_on,
            setting,
            unknown_bits: vec![0; unknown_count.div_ceil(64)],
            pending_unknown,
            live,
            stack: Vec::new(),
            state: ABSENT,
            first_return: usize::MAX,
            after_unknown: WordSet::default(),
            after_known: WordMap::default(),
            states: 0,
            work: 0,
            memo_words: 0,
            frontier: None,
            deepest: 0,
        };
        search.first_return = search.next_return(HEAD);
        search
    }

    /// Searches until a linearization is found, none can exist, or the
    /// clock passes `deadline`. The candidates for the next operation are
    /// the known operations called before the first return event, in list
    /// order, then the unknown ones worth trying, in history order.
    fn run(&mut self, deadline: Option<Instant>) -> SearchOutcome {
        let mut cursor = Cursor::Known(self.next[HEAD]);
        let mut next_clock_check = 0;
        loop {
            if self.work >= next_clock_check {
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    return SearchOutcome::OutOfTime;
                }
                next_clock_check = self.work + WORK_PER_CLOCK_CHECK;
                if self.memo_words > MEMO_LIMIT_WORDS {
                    return SearchOutcome::OutOfMemory;
                }
            }
            self.work += 1;
            let candidate = match cursor {
                Cursor::Known(event) => match self.events[event] {
                    Event::Head => return SearchOutcome::Linearizable,
                    Event::Call(i) => Some(i),
                    Event::Return(_) => {
                        cursor = Cursor::Unknown(0);
                        continue;
                    }
                },
                Cursor::Unknown(from) => self.unknown_candidate(from),
            };
            match candidate {
                Some(i) if self.push(i) => cursor = Cursor::Known(self.next[HEAD]),
                Some(i) if self.ops[i].unknown => cursor = Cursor::Unknown(i + 1),
                Some(i) => cursor = Cursor::Known(self.next[self.ops[i].call]),
                None => {
                    // Every candidate failed: the last choice was wrong.
                    self.note_frontier(self.first_return);
                    let Some(i) = self.pop() else {
                        return SearchOutcome::NotLinearizable;
                    };
                    cursor = if self.ops[i].unknown {
                        Cursor::Unknown(i + 1)
                    } else {
                        Cursor::Known(self.next[self.ops[i].call])
                    };
                }
            }
        }
    }

    /// The first unknown operation from `from` on (in history order) that
    /// may be worth linearizing next.
    fn unknown_candidate(&self, from: usize) -> Option<usize> {
        // A failed cas that the value does not allow may need any change.
        let candidates = if self.may_come_next(self.failing_on.get(&self.state), None) {
            &self.pending_unknown
        } else {
            &self.live
        };
        candidates.range(from..).next().copied()
    }

    /// Linearizes operation `i` next if it is allowed and worth it, and the
    /// state it leads to is new; whether it did.
    fn push(&mut self, i: usize) -> bool {
        let Some(after) = self.value_after(i) else {
            return false;
        };
        let pushed = Linearized {
            op: i,
            before: self.state,
            run_start: self.ops[i].unknown.then(|| {
                let last = self.stack.last();
                last.and_then(|last| last.run_start).unwrap_or(self.state)
            }),
        };
        if !self.enter(i, after, pushed.run_start) {
            return false;
        }
        self.mark(i, true);
        self.stack.push(pushed);
        self.deepest = self.deepest.max(self.stack.len());
        self.state = after;
        if !self.ops[i].unknown {
            self.lift(i);
        }
        true
    }

    /// Undoes the last [`Self::push`]; the operation, if there was one.
    fn pop(&mut self) -> Option<usize> {
        let popped = self.stack.pop()?;
        let i = popped.op;
        self.mark(i, false);
        self.state = popped.before;
        if !self.ops[i].unknown {
            self.unlift(i);
        }
        Some(i)
    }

    /// The register's value if operation `i` is linearized next, or `None`
    /// if it is not allowed or need not be tried (see the module doc).
    fn value_after(&self, i: usize) -> Option<Value> {
        let key_op = &self.ops[i];
        let after = key_op.op.apply(self.state)?;
        if let Some(last) = self.stack.last()
            && let Some(run_start) = last.run_start
            && (key_op.op.apply(last.before).is_some()
                || (!key_op.unknown && key_op.op.apply(run_start).is_some()))
        {
            return None;
        }
        if key_op.unknown {
            let twin_first = key_op.twin_before.is_none_or(|twin| self.linearized[twin]);
            if key_op.call > self.first_return
                || after == self.state
                || !twin_first
                || !(self.may_come_next(self.needing.get(&after), Some(i))
                    || self.may_come_next(self.failing_on.get(&self.state), Some(i)))
            {
                return None;
            }
        }
        Some(after)
    }

    /// Whether one of `ops` (in call order) other than `except` could be
    /// linearized next.
    fn may_come_next(&self, ops: Option<&Vec<usize>>, except: Option<usize>) -> bool {
        ops.into_iter()
            .flatten()
            .take_while(|&&j| self.ops[j].call < self.first_return)
            .any(|&j| Some(j) != except && !self.linearized[j])
    }

    /// Records that the search enters the state that linearizing `i` next
    /// leads to, with the register then holding `value` and, if `i` is
    /// unknown, the value before its run; `false` if that state, or one
    /// that dominates it, was entered before.
    ///
    /// The linearized known operations are those called before the first
    /// return event of the others, except those whose calls are still in
    /// the list before it; so the key holds that event's position and
    /// those calls' positions, not a bit per operation.
    fn enter(&mut self, i: usize, value: Value, run_start: Option<Value>) -> bool {
        let mut key = vec![u64::from(value)];
        let (call, ret) = (self.ops[i].call, self.ops[i].ret);
        let mut position = self.next[HEAD];
        loop {
            match self.events[position] {
                _ if position == call => {}
                Event::Return(_) if Some(position) == ret => {}
                Event::Head | Event::Return(_) => break,
                Event::Call(_) => key.push(position as u64),
            }
            position = self.next[position];
        }
        key.push(position as u64);
        let bit = self.ops[i].bit;
        if self.ops[i].unknown {
            self.unknown_bits[bit / 64] |= 1 << (bit % 64);
        }
        let entered = match run_start {
            Some(run_start) => {
                key.push(u64::from(self.state) + 1);
                key.push(u64::from(run_start) + 1);
                key.extend_from_slice(&self.unknown_bits);
                self.work += key.len() as u64;
                self.memo_words += key.len() + ENTRY_OVERHEAD_WORDS;
                self.after_unknown.insert(key.into())
            }
            None => {
                self.work += key.len() as u64;
                let key_words = key.len() + ENTRY_OVERHEAD_WORDS;
                let unknown_sets = self.after_known.entry(key.into()).or_default();
                if unknown_sets.is_empty() {
                    self.memo_words += key_words;
                }
                self.work += unknown_sets.len() as u64;
                let dominated = unknown_sets.iter().any(|entered| {
                    entered
                        .iter()
                        .zip(&self.unknown_bits)
                        .all(|(entered, now)| entered & !now == 0)
                });
                if !dominated {
                    self.memo_words += self.unknown_bits.len() + ENTRY_OVERHEAD_WORDS;
                    unknown_sets.push(self.unknown_bits.as_slice().into());
                }
                !dominated
            }
        };
        if self.ops[i].unknown && !entered {
            self.unknown_bits[bit / 64] &= !(1 << (bit % 64));
        }
        self.states += usize::from(entered);
        entered
    }

    /// Marks operation `i` linearized or not, keeping the sets of unknown
    /// operations up to date (its bit was set by [`Self::enter`]).
    fn mark(&mut self, i: usize, linearized: bool) {
        self.linearized[i] = linearized;
        if let Some(value) = self.ops[i].needs
            && let Some(setters) = self.setting.get(&value)
        {
            for &u in setters.iter().filter(|&&u| u != i) {
                let op = &mut self.ops[u];
                if linearized {
                    op.needed_by -= 1;
                    if op.needed_by == 0 {
                        self.live.remove(&u);
                    }
                } else {
                    op.needed_by += 1;
                    if op.needed_by == 1 && !self.linearized[u] {
                        self.live.insert(u);
                    }
                }
            }
        }
        if self.ops[i].unknown {
            if linearized {
                self.pending_unknown.remove(&i);
                self.live.remove(&i);
            } else {
                let bit = self.ops[i].bit;
                self.unknown_bits[bit / 64] &= !(1 << (bit % 64));
                self.pending_unknown.insert(i);
                if self.ops[i].needed_by > 0 {
                    self.live.insert(i);
                }
            }
        }
    }

    /// The position of the first return event after `position` in the
    /// list, `usize::MAX` if none.
    fn next_return(&self, mut position: usize) -> usize {
        loop {
            position = self.next[position];
            match self.events[position] {
                Event::Head => return usize::MAX,
                Event::Return(_) => return position,
                Event::Call(_) => {}
            }
        }
    }

    /// Takes known operation `i`'s events out of the list.
    fn lift(&mut self, i: usize) {
        self.unlink(self.ops[i].call);
        let ret = self.ops[i].ret.expect("a known operation returns");
        if ret == self.first_return {
            self.first_return = self.next_return(ret);
        }
        self.unlink(ret);
    }

    /// Puts back the events [`Self::lift`] took out (in reverse order, so
    /// the neighbours they remember are in the list again).
    fn unlift(&mut self, i: usize) {
        let ret = self.ops[i].ret.expect("a known operation returns");
        self.relink(ret);
        self.first_return = self.first_return.min(ret);
        self.relink(self.ops[i].call);
    }

    fn unlink(&mut self, position: usize) {
        let (prev, next) = (self.prev[position], self.next[position]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    fn relink(&mut self, position: usize) {
        let (prev, next) = (self.prev[position], self.next[position]);
        self.next[prev] = position;
        self.prev[next] = position;
    }

    /// Remembers where the search is stuck if it is further in time than
    /// before (or as far, with more operations linearized). Unknown
    /// operations at the end of the stack are left out: they were only
    /// being tried.
    fn note_frontier(&mut self, event: usize) {
        let depth = self
            .stack
            .iter()
            .rposition(|linearized| !self.ops[linearized.op].unknown)
            .map_or(0, |last_known| last_known + 1);
        let further = self
            .frontier
            .as_ref()
            .is_none_or(|frontier| (event, depth) > (frontier.event, frontier.prefix.len()));
        if further {
            self.frontier = Some(Frontier {
                event,
                prefix: self.stack[..depth]
                    .iter()
                    .map(|linearized| linearized.op)
                    .collect(),
            });
        }
    }

    /// The explanation of a failed search.
    fn counterexample(&self) -> Counterexample {
        let frontier = self
            .frontier
            .as_ref()
            .expect("a failed search met a return");
        let Event::Return(stuck) = self.events[frontier.event] else {
            panic!("the frontier is a return event");
        };
        let operation = |i: usize| &self.history.operations()[self.ops[i].index];
        let mut state = None;
        let prefix = frontier
            .prefix
            .iter()
            .map(|&i| {
                state = model::value_after(operation(i), state);
                Placed {
                    index: self.ops[i].index,
                    operation: operation(i).clone(),
                    state_after: state.map(str::to_owned),
                }
            })
            .collect();
        let mut placed = vec![false; self.ops.len()];
        for &i in &frontier.prefix {
            placed[i] = true;
        }
        let mut pending: Vec<usize> = (0..self.ops.len())
            .filter(|&i| !placed[i] && self.ops[i].call < frontier.event)
            .collect();
        pending.sort_unstable_by_key(|&i| self.ops[i].call);
        Counterexample {
            key: self.key.to_owned(),
            prefix,
            state: state.map(str::to_owned),
            stuck_at: self.ops[stuck].index,
            unplaced: pending
                .into_iter()
                .map(|i| (self.ops[i].index, operation(i).clone()))
                .collect(),
        }
    }
}

/// A fast hasher for the memo's keys, which are machine words:
/// multiply-and-rotate per word, then a final mix so that the low bits (the
/// table's bucket) depend on every bit.
#[derive(Default)]
struct WordHasher(u64);

impl WordHasher {
    /// An odd constant close to 2^64 divided by the golden ratio.
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

    fn add(&mut self, word: u64) {
        self.0 = (self.0 ^ word)
            .wrapping_mul(Self::MULTIPLIER)
            .rotate_left(26);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        for &byte in chunks.remainder() {
            self.add(u64::from(byte));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.add(word);
    }

    fn write_usize(&mut self, word: usize) {
        self.add(word as u64);
    }

    fn finish(&self) -> u64 {
        let mixed = (self.0 ^ (self.0 >> 32)).wrapping_mul(Self::MULTIPLIER);
        mixed ^ (mixed >> 29)
    }
}
