//! `vitals demo`: a deterministic, realistic lake of a SaaS vendor's product
//! events, written through the lake writer. What is planted (and what the
//! tests look for) is stated in [`Planted`]; the same seed gives the same lake.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};

use super::schema::{Table, UTC};
use super::log::LogState;
use super::writer::{encode, sort_batch, time_range, Transaction};
use super::{Lake, LakeError, Result};

/// What to generate.
#[derive(Debug, Clone)]
pub struct DemoArgs {
    pub accounts: usize,
    pub days: u32,
    pub seed: u64,
    /// The last day of events (inclusive).
    pub end_date: NaiveDate,
    /// Replace the tables of a lake that already has files.
    pub force: bool,
}

impl Default for DemoArgs {
    fn default() -> Self {
        Self { accounts: 120, days: 90, seed: 42, end_date: default_end_date(), force: false }
    }
}

/// The fixed default last day, so that a seed alone fixes the lake.
pub fn default_end_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 9, 30).unwrap_or_default()
}

/// The behaviour planted in the demo lake, for documentation and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct Planted {
    /// New users who do this event at least `magic_count` times within
    /// `magic_window_days` of signing up are far more likely to be active in
    /// days 8–14 after sign-up.
    pub magic_event: &'static str,
    pub magic_count: u32,
    pub magic_window_days: u32,
    /// Paying accounts whose usage falls sharply in the last `decline_days` days.
    pub declining: Vec<String>,
    /// The declining accounts whose key users stopped while the others only slowed down.
    pub concentrated: Vec<String>,
    pub decline_days: u32,
    /// Declining accounts whose CSM intervened, and recovered in part.
    pub intervened: Vec<String>,
    /// Accounts that stopped paying inside the window (now on the free plan),
    /// with the day their subscription ended.
    pub churned: Vec<(String, NaiveDate)>,
    /// The churned accounts whose usage fell over the three weeks before.
    pub churned_after_decline: Vec<String>,
}

/// What `generate` wrote.
#[derive(Debug, Clone, Default)]
pub struct DemoSummary {
    pub accounts: usize,
    pub users: usize,
    pub events: usize,
    pub files: usize,
    pub seconds: f64,
}

pub const MAGIC_EVENT: &str = "create_dashboard";
pub const DECLINE_DAYS: u32 = 14;

/// The subscriptions of one account, from its own random stream (so the rest
/// of the demo is the same with or without them): a paying account's current
/// rows add up to its ARR / 12. Older paying accounts may have expanded,
/// contracted or come back inside the window; some older free accounts paid
/// until a day inside it (most after their usage fell, see `events`).
fn plant_subscriptions(a: &mut Account, args: &DemoArgs, start: NaiveDate) {
    let mut r = Rng::derive(args.seed, 7, a.no as u64);
    let days = i64::from(args.days);
    let id = format!("sub-{:05}", a.no);
    let older = a.contract_start < start;
    let day = |d: i64| start + Duration::days(d);
    let row = |plan: &'static str, mrr: f64, starts_on: NaiveDate, ends_on: Option<NaiveDate>, seats: i32| Sub {
        id: id.clone(),
        plan,
        mrr,
        starts_on,
        ends_on,
        seats,
    };
    if !a.paid {
        let long_ago = date_of(a.signup_us) < start - Duration::days(60);
        if long_ago && r.chance(0.3) {
            let churn_day = r.range(days / 4, (days - 40).max(days / 4));
            let declined = r.chance(0.75);
            let mrr = (f64::from(a.seats) * r.range(700, 1100) as f64 / 12.0).round();
            a.subs.push(row("starter", mrr, a.contract_start, Some(day(churn_day)), a.seats));
            a.churn = Some(Churn { day: churn_day, declined });
        }
        return;
    }
    let mrr = a.arr / 12.0;
    let x = r.f64();
    let change = day(r.range(5, days - 5));
    let lower = |p: &'static str| match p {
        "enterprise" => "pro",
        "pro" => "starter",
        other => other,
    };
    if !older || x >= 0.28 {
        a.subs.push(row(a.plan, mrr, a.contract_start, None, a.seats));
    } else if x < 0.15 {
        // Expansion: fewer seats (and, for some, a lower plan) before.
        let share = 0.55 + 0.3 * r.f64();
        let seats = ((f64::from(a.seats) * share).round() as i32).max(1);
        let plan = if r.chance(0.5) { lower(a.plan) } else { a.plan };
        a.subs.push(row(plan, (mrr * share).round(), a.contract_start, Some(change), seats));
        a.subs.push(row(a.plan, mrr, change, None, a.seats));
    } else if x < 0.23 {
        // Contraction: more seats before.
        let share = 1.2 + 0.4 * r.f64();
        let seats = (f64::from(a.seats) * share).round() as i32;
        a.subs.push(row(a.plan, (mrr * share).round(), a.contract_start, Some(change), seats));
        a.subs.push(row(a.plan, mrr, change, None, a.seats));
    } else {
        // Reactivation: lapsed early in the window, back some weeks later.
        let lapse = r.range(3, (days / 3).max(4));
        let back = lapse + r.range(10, (days / 3).max(11));
        a.subs.push(row(a.plan, mrr, a.contract_start, Some(day(lapse)), a.seats));
        a.subs.push(row(a.plan, mrr, day(back.min(days - 1)), None, a.seats));
    }
}

/// SplitMix64: small, fast, and the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    /// A stream for one entity, independent of how many draws others made.
    pub fn derive(seed: u64, a: u64, b: u64) -> Self {
        let mut r = Rng::new(seed ^ a.wrapping_mul(0xd134_2543_de82_ef95) ^ b.wrapping_mul(0xa076_1d64_78bd_642f));
        r.next_u64();
        r
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
    /// Uniform integer in [lo, hi].
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % ((hi - lo + 1) as u64)) as i64
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }
    /// An index drawn with the given weights.
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
    /// Exponential with the given mean.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f64()).ln()
    }
}

const CSMS: [&str; 6] = ["alice.chen", "bruno.silva", "carla.rossi", "dev.patel", "emma.jones", "farid.haddad"];
const INDUSTRIES: [&str; 7] = ["software", "retail", "finance", "healthcare", "education", "manufacturing", "media"];
const REGIONS: [&str; 4] = ["na", "emea", "apac", "latam"];
const NAME_A: [&str; 12] = ["Blue", "North", "Bright", "Silver", "Rapid", "Green", "Prime", "Urban", "Clear", "Iron", "Lunar", "Summit"];
const NAME_B: [&str; 12] = ["Labs", "Works", "Systems", "Health", "Retail", "Logistics", "Media", "Capital", "Foods", "Energy", "Travel", "Cloud"];
const FIRST: [&str; 16] = ["Ana", "Ben", "Chloe", "Dan", "Eva", "Finn", "Gita", "Hugo", "Iris", "Jon", "Kira", "Liam", "Mia", "Noah", "Omar", "Pia"];
const LAST: [&str; 12] = ["Smith", "Garcia", "Kim", "Müller", "Rossi", "Nakamura", "Okafor", "Silva", "Novak", "Dubois", "Khan", "Larsen"];
const BROWSERS: [&str; 4] = ["Chrome", "Safari", "Edge", "Firefox"];
const BROWSER_W: [f64; 4] = [0.62, 0.18, 0.12, 0.08];
const OSES: [&str; 5] = ["Windows", "macOS", "Linux", "iOS", "Android"];
const OS_W: [f64; 5] = [0.45, 0.33, 0.08, 0.08, 0.06];

/// Product modules, their pages and their base share of attention.
const MODULES: [(&str, [&str; 3], f64); 7] = [
    ("dashboards", ["/dashboards", "/dashboards/view", "/dashboards/edit"], 0.30),
    ("reports", ["/reports", "/reports/view", "/reports/schedule"], 0.22),
    ("projects", ["/projects", "/projects/board", "/projects/settings"], 0.18),
    ("data", ["/data/sources", "/data/models", "/data/sync"], 0.12),
    ("alerts", ["/alerts", "/alerts/new", "/alerts/history"], 0.07),
    ("admin", ["/admin/users", "/admin/billing", "/admin/security"], 0.06),
    // Launched during the demo window: its share grows day by day.
    ("insights", ["/insights", "/insights/explore", "/insights/ask"], 0.05),
];

/// Acquisition channels: (source, medium, campaign, weight, engaged share, bounce share).
const CHANNELS: [(&str, &str, &str, f64, f64, f64); 7] = [
    ("google", "cpc", "brand_search", 0.22, 0.42, 0.18),
    ("google", "organic", "", 0.20, 0.36, 0.25),
    ("linkedin", "paid_social", "abm_q3", 0.14, 0.30, 0.30),
    ("facebook", "paid_social", "retargeting", 0.12, 0.12, 0.55),
    ("newsletter", "email", "monthly_digest", 0.10, 0.33, 0.28),
    ("partner", "referral", "partner_program", 0.07, 0.60, 0.12),
    ("", "", "", 0.15, 0.35, 0.22),
];

/// Event kinds. The first three are the contract's defaults for sign-up,
/// login and page view.
const EVENTS: [&str; 12] = [
    "signup", "login", "page_view", "create_project", "create_dashboard", "invite_user", "upgrade",
    "export_report", "share_dashboard", "run_query", "create_alert", "api_call",
];
const E_SIGNUP: u8 = 0;
const E_LOGIN: u8 = 1;
const E_PAGE: u8 = 2;
const E_PROJECT: u8 = 3;
const E_DASHBOARD: u8 = 4;
const E_INVITE: u8 = 5;
const E_UPGRADE: u8 = 6;
/// Everyday feature events, with the module each belongs to.
const FEATURES: [(u8, usize, f64); 6] = [(7, 1, 0.30), (8, 0, 0.15), (9, 3, 0.30), (10, 4, 0.10), (11, 3, 0.10), (E_PROJECT, 2, 0.05)];

const DAY_US: i64 = 86_400_000_000;

#[derive(Debug, Clone)]
struct Account {
    no: usize,
    id: String,
    name: String,
    plan: &'static str,
    paid: bool,
    csm: Option<&'static str>,
    seats: i32,
    arr: f64,
    signup_us: i64,
    contract_start: NaiveDate,
    renewal: NaiveDate,
    industry: &'static str,
    region: &'static str,
    /// Scales every user's chance of being active on a day.
    vigour: f64,
    decline: Option<Decline>,
    module_w: [f64; 7],
    /// Stopped paying inside the window (see [`Planted::churned`]).
    churn: Option<Churn>,
    /// What it paid over time: the subscriptions table's rows.
    subs: Vec<Sub>,
}

#[derive(Debug, Clone, Copy)]
struct Churn {
    /// Window day (from its first day) on which the subscription ended.
    day: i64,
    /// Usage fell over the three weeks before.
    declined: bool,
}

/// One subscriptions row.
#[derive(Debug, Clone)]
struct Sub {
    id: String,
    plan: &'static str,
    mrr: f64,
    starts_on: NaiveDate,
    ends_on: Option<NaiveDate>,
    seats: i32,
}

#[derive(Debug, Clone, Copy)]
struct Decline {
    /// Broad: nine users in ten stop. Concentrated: key users stop, the others slow down.
    broad: bool,
    intervention_us: Option<i64>,
}

#[derive(Debug, Clone)]
struct User {
    id: String,
    name: String,
    role: &'static str,
    key: bool,
    signup_us: i64,
    /// Signed up inside the window: has a sign-up event and a fate.
    new: bool,
    engaged: bool,
    channel: usize,
    /// The last day (index from the window start, exclusive) the user is active.
    churn_day: i64,
    p_day: f64,
    browser: &'static str,
    os: &'static str,
}

/// One generated event, small until it is written.
#[derive(Debug, Clone, Copy, Default)]
struct Ev {
    t: i64,
    kind: u8,
    session: u32,
    module: u8,
    page: u8,
    duration_ms: i32,
    utm: u8,
}

struct World {
    args: DemoArgs,
    start_us: i64,
    end_us: i64,
    accounts: Vec<Account>,
}

fn micros(d: NaiveDate) -> i64 {
    NaiveDateTime::from(d).and_utc().timestamp_micros()
}

fn date_of(us: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp_micros(us).map(|t| t.date_naive()).unwrap_or_default()
}

fn days_since_epoch(d: NaiveDate) -> i32 {
    (d - NaiveDate::default()).num_days() as i32
}

impl World {
    fn new(args: &DemoArgs) -> Result<World> {
        if args.accounts == 0 || args.days < 14 {
            return Err(LakeError::Input("the demo needs at least 1 account and 14 days".into()));
        }
        let start = args.end_date - Duration::days(args.days as i64 - 1);
        let start_us = micros(start);
        let end_us = micros(args.end_date) + DAY_US;
        let mut accounts = Vec::with_capacity(args.accounts);
        for no in 1..=args.accounts {
            let mut r = Rng::derive(args.seed, 1, no as u64);
            let plan_i = r.weighted(&[0.28, 0.32, 0.28, 0.12]);
            let plan = ["free", "starter", "pro", "enterprise"][plan_i];
            let paid = plan_i > 0;
            let seats = match plan_i {
                0 => r.range(2, 6),
                1 => r.range(5, 15),
                2 => r.range(15, 45),
                _ => r.range(40, 120),
            } as i32;
            let arr = match plan_i {
                0 => 0.0,
                1 => seats as f64 * r.range(700, 1100) as f64,
                2 => seats as f64 * r.range(1100, 1600) as f64,
                _ => seats as f64 * r.range(1500, 2400) as f64,
            };
            // A third of the accounts sign up inside the window; the rest are older.
            let signup_us = if r.chance(0.33) {
                start_us + r.range(0, (args.days as i64 - 10) * DAY_US / 1_000_000) * 1_000_000
            } else {
                start_us - r.range(30, 900) * DAY_US
            };
            let contract_start = date_of(signup_us) + Duration::days(r.range(0, 20));
            let mut renewal = contract_start;
            while renewal <= args.end_date {
                renewal = renewal.checked_add_months(chrono::Months::new(12)).unwrap_or(renewal + Duration::days(365));
            }
            let mut module_w = [0.0; 7];
            for (i, m) in MODULES.iter().enumerate() {
                module_w[i] = m.2 * (0.5 + r.f64());
            }
            accounts.push(Account {
                no,
                id: format!("org-{no:05}"),
                name: format!("{} {}", r.pick(&NAME_A), r.pick(&NAME_B)),
                plan,
                paid,
                csm: paid.then(|| *r.pick(&CSMS)),
                seats,
                arr,
                signup_us,
                contract_start,
                renewal,
                industry: *r.pick(&INDUSTRIES),
                region: *r.pick(&REGIONS),
                vigour: 0.55 + 0.6 * r.f64(),
                decline: None,
                module_w,
                churn: None,
                subs: Vec::new(),
            });
        }
        for a in &mut accounts {
            plant_subscriptions(a, args, start);
        }
        // Plant the declining accounts: paying, older than the window, not tiny.
        let mut candidates: Vec<usize> =
            (0..accounts.len()).filter(|&i| accounts[i].paid && accounts[i].signup_us < start_us && accounts[i].seats >= 12).collect();
        let mut r = Rng::derive(args.seed, 2, 0);
        let want = (accounts.len() / 15).clamp(3, 40).min(candidates.len());
        for k in 0..want {
            let j = r.range(k as i64, candidates.len() as i64 - 1) as usize;
            candidates.swap(k, j);
            let a = &mut accounts[candidates[k]];
            let intervention_us = (k % 2 == 0).then(|| end_us - 6 * DAY_US + r.range(0, 1) * DAY_US + 15 * 3_600_000_000);
            a.decline = Some(Decline { broad: k % 3 != 2, intervention_us });
            a.vigour = a.vigour.max(0.9);
        }
        Ok(World { args: args.clone(), start_us, end_us, accounts })
    }

    fn planted(&self) -> Planted {
        let mut declining: Vec<String> = self.accounts.iter().filter(|a| a.decline.is_some()).map(|a| a.id.clone()).collect();
        declining.sort();
        let intervened =
            self.accounts.iter().filter(|a| a.decline.is_some_and(|d| d.intervention_us.is_some())).map(|a| a.id.clone()).collect();
        let mut concentrated: Vec<String> = self.accounts.iter().filter(|a| a.decline.is_some_and(|d| !d.broad)).map(|a| a.id.clone()).collect();
        concentrated.sort();
        let start = date_of(self.start_us);
        let mut churned: Vec<(String, NaiveDate)> =
            self.accounts.iter().filter_map(|a| a.churn.map(|c| (a.id.clone(), start + Duration::days(c.day)))).collect();
        churned.sort();
        let mut churned_after_decline: Vec<String> = self.accounts.iter().filter(|a| a.churn.is_some_and(|c| c.declined)).map(|a| a.id.clone()).collect();
        churned_after_decline.sort();
        Planted {
            magic_event: MAGIC_EVENT,
            magic_count: 3,
            magic_window_days: 7,
            declining,
            concentrated,
            decline_days: DECLINE_DAYS,
            intervened,
            churned,
            churned_after_decline,
        }
    }

    fn users(&self, a: &Account) -> Vec<User> {
        let mut r = Rng::derive(self.args.seed, 3, a.no as u64);
        let adoption = 0.45 + 0.5 * r.f64();
        let n = ((a.seats as f64 * adoption).round() as usize).max(1);
        let mut users = Vec::with_capacity(n);
        let account_new = a.signup_us >= self.start_us;
        let days = self.args.days as i64;
        for i in 0..n {
            // Users of an older account mostly predate the window; some join during it.
            let new = account_new || r.chance(0.25);
            let signup_us = if account_new {
                if i == 0 { a.signup_us } else { a.signup_us + (r.exp(6.0) * DAY_US as f64) as i64 }
            } else if new {
                self.start_us + r.range(0, days * 86_400 - 1) * 1_000_000
            } else {
                a.signup_us + r.range(0, (self.start_us - a.signup_us) / 1_000_000) * 1_000_000
            };
            let channel = r.weighted(&CHANNELS.map(|c| c.3));
            let engaged = r.chance(CHANNELS[channel].4);
            let first_day = (signup_us - self.start_us).div_euclid(DAY_US);
            // Three phases: fast early loss (non-engaged users leave in week one),
            // selection over the next weeks, then a stable core.
            let churn_day = if new {
                if !engaged && r.chance(0.8) {
                    first_day + r.range(2, 7)
                } else if r.chance(if engaged { 0.5 } else { 0.2 }) {
                    i64::MAX
                } else {
                    first_day + 14 + r.exp(if engaged { 30.0 } else { 12.0 }) as i64
                }
            } else if r.chance(0.06) {
                r.range(0, days)
            } else {
                i64::MAX
            };
            let role = if i == 0 { "admin" } else { *r.pick(&["member", "member", "member", "analyst", "viewer", "admin"]) };
            users.push(User {
                id: format!("u-{:05}-{:04}", a.no, i + 1),
                name: format!("{} {}", r.pick(&FIRST), r.pick(&LAST)),
                role,
                key: i == 0 || (i < 4 && r.chance(0.5)),
                signup_us,
                new,
                engaged,
                channel,
                churn_day,
                p_day: (0.35 + 0.5 * r.f64()) * a.vigour * if i < 4 { 1.3 } else { 1.0 },
                browser: BROWSERS[r.weighted(&BROWSER_W)],
                os: OSES[r.weighted(&OS_W)],
            });
        }
        users.sort_by(|x, y| x.id.cmp(&y.id));
        users
    }

    /// Every event of one user, in time order.
    fn events(&self, a: &Account, u: &User, out: &mut Vec<Ev>) {
        out.clear();
        let mut r = Rng::derive(self.args.seed ^ 0x5eed, a.no as u64, hash_str(&u.id));
        let days = self.args.days as i64;
        let mut session: u32 = 0;
        let first_day = ((u.signup_us - self.start_us).div_euclid(DAY_US)).max(0);
        let signup_day = (u.signup_us - self.start_us).div_euclid(DAY_US);
        let utm = CHANNELS[u.channel].0.is_empty().then_some(255u8).unwrap_or(u.channel as u8);
        if u.new && u.signup_us >= self.start_us {
            // The sign-up visit, with its channel, and the onboarding funnel.
            self.session(a, u, &mut r, u.signup_us, session, utm, Some(E_SIGNUP), out);
            session += 1;
            let mut t = u.signup_us;
            let steps: [(u8, f64, f64, f64); 3] = if u.engaged {
                [(E_PROJECT, 0.92, 0.6, 0.0), (E_INVITE, 0.65, 1.5, 0.0), (E_UPGRADE, 0.35, 3.0, 0.0)]
            } else {
                [(E_PROJECT, 0.55, 1.5, 0.0), (E_INVITE, 0.3, 3.0, 0.0), (E_UPGRADE, 0.12, 5.0, 0.0)]
            };
            for (kind, p, mean_days, _) in steps {
                if !r.chance(p) {
                    break;
                }
                t += (r.exp(mean_days) * DAY_US as f64) as i64 + 60_000_000;
                let day = (t - self.start_us).div_euclid(DAY_US);
                if t >= self.end_us || day >= u.churn_day.saturating_add(1) {
                    break;
                }
                self.session(a, u, &mut r, t, session, 255, Some(kind), out);
                session += 1;
            }
            // The planted behaviour: engaged users build dashboards in week one.
            let builds = if u.engaged { r.range(3, 6) } else { *r.pick(&[0, 0, 0, 1, 1, 2]) };
            for _ in 0..builds {
                let t = u.signup_us + r.range(3_600, 6 * 86_400) * 1_000_000;
                let day = (t - self.start_us).div_euclid(DAY_US);
                if t < self.end_us && day <= u.churn_day {
                    self.session(a, u, &mut r, t, session, 255, Some(E_DASHBOARD), out);
                    session += 1;
                }
            }
        }
        // A decline starts on the first day of the decline window; after a CSM
        // intervenes, three in ten of the users who stopped come back, less active.
        let stopper = r.chance(0.9);
        let returns = r.chance(0.3);
        for day in first_day..days {
            if day >= u.churn_day {
                break;
            }
            let t0 = self.start_us + day * DAY_US;
            let weekday = date_of(t0).weekday().number_from_monday() <= 5;
            let mut p = u.p_day * if weekday { 1.0 } else { 0.25 };
            if u.new && day - signup_day < 7 {
                // Everyone tries the product in the first week.
                p = p.max(0.6);
            }
            if let Some(d) = a.decline {
                let decline_start = days - DECLINE_DAYS as i64;
                let recovered = d.intervention_us.is_some_and(|iv| t0 > iv) && returns;
                if day >= decline_start && !recovered {
                    // Broad: nine users in ten stop, the rest slow down.
                    // Concentrated: every key user stops; the others slow down.
                    p *= match (d.broad, u.key) {
                        (true, _) => if stopper { 0.0 } else { 0.35 },
                        (false, true) => 0.0,
                        (false, false) => 0.3,
                    };
                }
                if recovered {
                    p *= 0.6;
                }
            }
            if let Some(c) = a.churn {
                // Gone but for a few people on the free plan; with a decline, fading over three weeks first.
                if day >= c.day {
                    p *= 0.08;
                } else if c.declined && day >= c.day - 21 {
                    p *= 0.3;
                }
            }
            if !r.chance(p.min(0.97)) {
                continue;
            }
            let sessions = 1 + r.chance(0.35) as i64 + r.chance(0.1) as i64;
            for _ in 0..sessions {
                let t = t0 + r.range(7 * 3600, 21 * 3600) * 1_000_000;
                if day == signup_day && t < u.signup_us {
                    continue;
                }
                let email = (r.chance(0.04)).then_some(4u8).unwrap_or(255);
                self.session(a, u, &mut r, t, session, email, None, out);
                session += 1;
            }
        }
        out.sort_by_key(|e| (e.t, e.session));
    }

    /// One visit: a login, page views across modules, a few feature events,
    /// and `special` (a funnel step) when given.
    #[allow(clippy::too_many_arguments)]
    fn session(&self, a: &Account, u: &User, r: &mut Rng, start: i64, session: u32, utm: u8, special: Option<u8>, out: &mut Vec<Ev>) {
        let progress = ((start - self.start_us) as f64 / (self.end_us - self.start_us) as f64).clamp(0.0, 1.0);
        let mut w = a.module_w;
        w[6] *= 0.2 + 4.0 * progress;
        let bounce_p = if utm != 255 { CHANNELS[utm as usize].5 } else { 0.15 };
        let pages = if r.chance(bounce_p) { 1 } else { r.range(2, 10) };
        let mut t = start;
        let push = |t: i64, kind: u8, module: u8, page: u8, dur: i32, out: &mut Vec<Ev>| {
            if t < self.end_us {
                out.push(Ev { t, kind, session, module, page, duration_ms: dur, utm });
            }
        };
        if special == Some(E_SIGNUP) {
            push(t, E_SIGNUP, 255, 255, -1, out);
            t += 5_000_000;
        }
        push(t, E_LOGIN, 255, 255, -1, out);
        for k in 0..pages {
            let m = r.weighted(&w);
            let dur = (r.exp(if u.engaged { 95_000.0 } else { 60_000.0 }) as i32).clamp(1_000, 1_800_000);
            t += 2_000_000 + r.range(0, 20_000) * 1_000;
            push(t, E_PAGE, m as u8, r.range(0, 2) as u8, dur, out);
            if let Some(kind) = special.filter(|s| *s != E_SIGNUP && k == 0) {
                let module = match kind {
                    E_PROJECT => 2,
                    E_DASHBOARD => 0,
                    _ => 5,
                };
                push(t + 1_000_000, kind, module, 0, -1, out);
            }
            for (kind, module, p) in FEATURES {
                if module == m && r.chance(p) {
                    push(t + 1_500_000, kind, module as u8, r.range(0, 2) as u8, -1, out);
                }
            }
            t += dur as i64 * 1_000;
        }
    }
}

/// Appends `n` in decimal, zero-padded to `width` digits (a hot path: no `format!`).
fn push_padded(buf: &mut String, n: usize, width: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for _ in (digits.len() - i)..width {
        buf.push('0');
    }
    buf.extend(digits[i..].iter().map(|&d| d as char));
}

fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// The behaviour a seed plants, without generating the lake.
pub fn planted(args: &DemoArgs) -> Result<Planted> {
    Ok(World::new(args)?.planted())
}

/// Columnar builders for a chunk of events.
struct EventBuilders {
    id: StringBuilder,
    time: TimestampMicrosecondBuilder,
    org: StringBuilder,
    user: StringBuilder,
    event: StringBuilder,
    session: StringBuilder,
    module: StringBuilder,
    page: StringBuilder,
    duration: Int64Builder,
    utm: [StringBuilder; 5],
    browser: StringBuilder,
    os: StringBuilder,
    region: StringBuilder,
    properties: StringBuilder,
    rows: usize,
}

impl EventBuilders {
    fn new() -> Self {
        let s = StringBuilder::new;
        Self {
            id: s(),
            time: TimestampMicrosecondBuilder::new().with_timezone(UTC),
            org: s(),
            user: s(),
            event: s(),
            session: s(),
            module: s(),
            page: s(),
            duration: Int64Builder::new(),
            utm: [s(), s(), s(), s(), s()],
            browser: s(),
            os: s(),
            region: s(),
            properties: s(),
            rows: 0,
        }
    }

    fn push(&mut self, a: &Account, u: &User, e: &Ev, seq: usize, buf: &mut String) {
        buf.clear();
        buf.push_str(&u.id);
        buf.push('-');
        push_padded(buf, seq, 6);
        self.id.append_value(buf.as_str());
        self.time.append_value(e.t);
        self.org.append_value(&a.id);
        self.user.append_value(&u.id);
        self.event.append_value(EVENTS[e.kind as usize]);
        buf.truncate(u.id.len());
        buf.push_str("-s");
        push_padded(buf, e.session as usize, 1);
        self.session.append_value(buf.as_str());
        if e.module == 255 {
            self.module.append_null();
            self.page.append_null();
        } else {
            let (name, pages, _) = &MODULES[e.module as usize];
            self.module.append_value(name);
            self.page.append_value(pages[e.page as usize % 3]);
        }
        if e.duration_ms >= 0 && e.kind == E_PAGE {
            self.duration.append_value(e.duration_ms as i64);
        } else {
            self.duration.append_null();
        }
        if e.utm == 255 {
            for b in &mut self.utm {
                b.append_null();
            }
        } else {
            let c = &CHANNELS[e.utm as usize];
            self.utm[0].append_value(c.0);
            self.utm[1].append_value(c.1);
            if c.2.is_empty() { self.utm[2].append_null() } else { self.utm[2].append_value(c.2) }
            self.utm[3].append_null();
            self.utm[4].append_null();
        }
        self.browser.append_value(u.browser);
        self.os.append_value(u.os);
        self.region.append_value(a.region);
        if e.kind == E_DASHBOARD {
            buf.clear();
            let _ = write!(buf, "{{\"widgets\":{}}}", 2 + seq % 7);
            self.properties.append_value(buf.as_str());
        } else {
            self.properties.append_null();
        }
        self.rows += 1;
    }

    fn finish(&mut self) -> Result<RecordBatch> {
        let [u0, u1, u2, u3, u4] = &mut self.utm;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.time.finish()),
            Arc::new(self.org.finish()),
            Arc::new(self.user.finish()),
            Arc::new(self.event.finish()),
            Arc::new(self.session.finish()),
            Arc::new(self.module.finish()),
            Arc::new(self.page.finish()),
            Arc::new(self.duration.finish()),
            Arc::new(u0.finish()),
            Arc::new(u1.finish()),
            Arc::new(u2.finish()),
            Arc::new(u3.finish()),
            Arc::new(u4.finish()),
            Arc::new(self.browser.finish()),
            Arc::new(self.os.finish()),
            Arc::new(self.region.finish()),
            Arc::new(self.properties.finish()),
        ];
        self.rows = 0;
        Ok(RecordBatch::try_new(Table::Events.schema(), cols)?)
    }
}

/// Events held in compact form (32 bytes each) before they are written: up to
/// this many, the lake has one file per day.
const CHUNK_EVENTS: usize = 16_000_000;

/// A generated event waiting to be written, with whom it belongs to.
#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    day: u32,
    account: u32,
    user: u32,
    seq: u32,
    ev: Ev,
}

/// Generates the demo lake. Fails if the lake already has tables, unless `force`.
pub async fn generate(lake: &Lake, args: &DemoArgs) -> Result<(DemoSummary, Planted)> {
    let started = std::time::Instant::now();
    let world = World::new(args)?;
    for t in Table::ALL {
        let files = lake.list_files(t).await?;
        if !files.is_empty() && !args.force {
            return Err(LakeError::Input(format!(
                "{} already has {} files in {}; pass --force to replace the demo tables",
                lake.display(),
                files.len(),
                t.name()
            )));
        }
    }
    let log = LogState::load(lake).await?;
    let mut tx = Transaction::new(lake, log.version, "demo");
    for t in Table::ALL {
        tx.retire(lake.list_files(t).await?.iter().map(|m| lake.relative(&m.location).to_string()));
    }
    let mut summary = DemoSummary { accounts: world.accounts.len(), ..Default::default() };
    let (mut users_b, mut accounts_b, mut iv_b) = (UserBuilders::new(), AccountBuilders::new(), IvBuilders::new());
    let days = args.days as usize;
    let mut users: Vec<Vec<User>> = Vec::with_capacity(world.accounts.len());
    let mut pending: Vec<Pending> = Vec::new();
    let mut evs = Vec::new();
    for (ai, a) in world.accounts.iter().enumerate() {
        accounts_b.push(a);
        if let Some(Decline { intervention_us: Some(t), .. }) = a.decline {
            iv_b.push(a, t, "call", "usage dropped sharply; reviewed goals with the champion");
        }
        if a.paid && a.no % 9 == 0 {
            iv_b.push(a, world.end_us - (20 + a.no as i64 % 30) * DAY_US, "qbr", "quarterly business review");
        }
        let account_users = world.users(a);
        for (ui, u) in account_users.iter().enumerate() {
            users_b.push(a, u);
            summary.users += 1;
            world.events(a, u, &mut evs);
            for (seq, e) in evs.iter().enumerate() {
                let d = (e.t - world.start_us).div_euclid(DAY_US);
                if d < 0 || d >= days as i64 {
                    continue;
                }
                pending.push(Pending { day: d as u32, account: ai as u32, user: ui as u32, seq: seq as u32, ev: *e });
            }
        }
        users.push(account_users);
        if pending.len() >= CHUNK_EVENTS {
            summary.events += flush_days(&mut tx, &world, &users, &mut pending).await?;
        }
    }
    summary.events += flush_days(&mut tx, &world, &users, &mut pending).await?;
    tx.stage(Table::Accounts, None, &[accounts_b.finish()?]).await?;
    let users = sort_batch(Table::Users, &users_b.finish()?)?;
    tx.stage(Table::Users, None, &[users]).await?;
    let ivs = sort_batch(Table::Interventions, &iv_b.finish()?)?;
    tx.stage(Table::Interventions, None, &[ivs]).await?;
    let subs = sort_batch(Table::Subscriptions, &subscriptions_batch(&world.accounts)?)?;
    tx.stage(Table::Subscriptions, None, &[subs]).await?;
    summary.files = tx.added().len();
    // Any commit since the demo looked at the lake changes what it replaces.
    tx.commit(|_| true).await?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok((summary, world.planted()))
}

/// Writes the pending events as one file per day. Events were generated
/// account by account and user by user in id order, each user's in time
/// order, so a stable split by day leaves every day sorted by
/// (org_id, user_id, event_time). Days are built and encoded on all cores.
async fn flush_days(tx: &mut Transaction, world: &World, users: &[Vec<User>], pending: &mut Vec<Pending>) -> Result<usize> {
    let days = world.args.days as usize;
    let mut offsets = vec![0usize; days + 1];
    for p in pending.iter() {
        offsets[p.day as usize + 1] += 1;
    }
    for d in 0..days {
        offsets[d + 1] += offsets[d];
    }
    let mut next = offsets.clone();
    let mut sorted = vec![Pending::default(); pending.len()];
    for p in pending.iter() {
        let d = p.day as usize;
        sorted[next[d]] = *p;
        next[d] += 1;
    }
    pending.clear();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cursor = std::sync::atomic::AtomicUsize::new(0);
    let encoded: Vec<Result<(usize, bytes::Bytes, usize, Option<(i64, i64)>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    let mut buf = String::new();
                    loop {
                        let d = cursor.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if d >= days {
                            break;
                        }
                        let slice = &sorted[offsets[d]..offsets[d + 1]];
                        if slice.is_empty() {
                            continue;
                        }
                        let mut b = EventBuilders::new();
                        for p in slice {
                            let a = &world.accounts[p.account as usize];
                            b.push(a, &users[p.account as usize][p.user as usize], &p.ev, p.seq as usize, &mut buf);
                        }
                        out.push(b.finish().and_then(|batch| {
                            let batches = std::slice::from_ref(&batch);
                            Ok((d, encode(Table::Events, batches)?, batch.num_rows(), time_range(Table::Events, batches)))
                        }));
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|_| vec![Err(LakeError::Input("encoder thread panicked".into()))])).collect()
    });
    let mut files = encoded.into_iter().collect::<Result<Vec<_>>>()?;
    files.sort_by_key(|f| f.0);
    let mut n = 0;
    for (d, bytes, rows, time) in files {
        n += rows;
        tx.stage_encoded(Table::Events, Some(date_of(world.start_us + d as i64 * DAY_US)), bytes, rows, time).await?;
    }
    Ok(n)
}

struct AccountBuilders {
    id: StringBuilder,
    name: StringBuilder,
    plan: StringBuilder,
    paid: BooleanBuilder,
    csm: StringBuilder,
    seats: Int32Builder,
    arr: Float64Builder,
    signup: TimestampMicrosecondBuilder,
    start: Date32Builder,
    renewal: Date32Builder,
    industry: StringBuilder,
    region: StringBuilder,
}

impl AccountBuilders {
    fn new() -> Self {
        let s = StringBuilder::new;
        Self {
            id: s(),
            name: s(),
            plan: s(),
            paid: BooleanBuilder::new(),
            csm: s(),
            seats: Int32Builder::new(),
            arr: Float64Builder::new(),
            signup: TimestampMicrosecondBuilder::new().with_timezone(UTC),
            start: Date32Builder::new(),
            renewal: Date32Builder::new(),
            industry: s(),
            region: s(),
        }
    }
    fn push(&mut self, a: &Account) {
        self.id.append_value(&a.id);
        self.name.append_value(&a.name);
        self.plan.append_value(a.plan);
        self.paid.append_value(a.paid);
        self.csm.append_option(a.csm);
        self.seats.append_value(a.seats);
        self.arr.append_value(a.arr);
        self.signup.append_value(a.signup_us);
        if a.paid {
            self.start.append_value(days_since_epoch(a.contract_start));
            self.renewal.append_value(days_since_epoch(a.renewal));
        } else {
            self.start.append_null();
            self.renewal.append_null();
        }
        self.industry.append_value(a.industry);
        self.region.append_value(a.region);
    }
    fn finish(&mut self) -> Result<RecordBatch> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.plan.finish()),
            Arc::new(self.paid.finish()),
            Arc::new(self.csm.finish()),
            Arc::new(self.seats.finish()),
            Arc::new(self.arr.finish()),
            Arc::new(self.signup.finish()),
            Arc::new(self.start.finish()),
            Arc::new(self.renewal.finish()),
            Arc::new(self.industry.finish()),
            Arc::new(self.region.finish()),
        ];
        Ok(RecordBatch::try_new(Table::Accounts.schema(), cols)?)
    }
}

struct UserBuilders {
    id: StringBuilder,
    org: StringBuilder,
    name: StringBuilder,
    role: StringBuilder,
    key: BooleanBuilder,
    signup: TimestampMicrosecondBuilder,
}

impl UserBuilders {
    fn new() -> Self {
        let s = StringBuilder::new;
        Self { id: s(), org: s(), name: s(), role: s(), key: BooleanBuilder::new(), signup: TimestampMicrosecondBuilder::new().with_timezone(UTC) }
    }
    fn push(&mut self, a: &Account, u: &User) {
        self.id.append_value(&u.id);
        self.org.append_value(&a.id);
        self.name.append_value(&u.name);
        self.role.append_value(u.role);
        self.key.append_value(u.key);
        self.signup.append_value(u.signup_us);
    }
    fn finish(&mut self) -> Result<RecordBatch> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.org.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.role.finish()),
            Arc::new(self.key.finish()),
            Arc::new(self.signup.finish()),
        ];
        Ok(RecordBatch::try_new(Table::Users.schema(), cols)?)
    }
}

struct IvBuilders {
    org: StringBuilder,
    csm: StringBuilder,
    at: TimestampMicrosecondBuilder,
    kind: StringBuilder,
    note: StringBuilder,
}

impl IvBuilders {
    fn new() -> Self {
        let s = StringBuilder::new;
        Self { org: s(), csm: s(), at: TimestampMicrosecondBuilder::new().with_timezone(UTC), kind: s(), note: s() }
    }
    fn push(&mut self, a: &Account, at: i64, kind: &str, note: &str) {
        self.org.append_value(&a.id);
        self.csm.append_option(a.csm);
        self.at.append_value(at);
        self.kind.append_value(kind);
        self.note.append_value(note);
    }
    fn finish(&mut self) -> Result<RecordBatch> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.org.finish()),
            Arc::new(self.csm.finish()),
            Arc::new(self.at.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.note.finish()),
        ];
        Ok(RecordBatch::try_new(Table::Interventions.schema(), cols)?)
    }
}

/// The subscriptions table of the demo.
fn subscriptions_batch(accounts: &[Account]) -> Result<RecordBatch> {
    let (mut org, mut id, mut plan) = (StringBuilder::new(), StringBuilder::new(), StringBuilder::new());
    let (mut mrr, mut starts, mut ends, mut seats) = (Float64Builder::new(), Date32Builder::new(), Date32Builder::new(), Int32Builder::new());
    for a in accounts {
        for s in &a.subs {
            org.append_value(&a.id);
            id.append_value(&s.id);
            plan.append_value(s.plan);
            mrr.append_value(s.mrr);
            starts.append_value(days_since_epoch(s.starts_on));
            ends.append_option(s.ends_on.map(days_since_epoch));
            seats.append_value(s.seats);
        }
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(org.finish()),
        Arc::new(id.finish()),
        Arc::new(plan.finish()),
        Arc::new(mrr.finish()),
        Arc::new(starts.finish()),
        Arc::new(ends.finish()),
        Arc::new(seats.finish()),
    ];
    Ok(RecordBatch::try_new(Table::Subscriptions.schema(), cols)?)
}
